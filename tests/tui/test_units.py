"""The TUI's plain-Python parts: diff parsing, braille plotting, log tailing and indexing, user config, keymap."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.views import build_rows
from nightlab.tui import braille, keymap
from nightlab.tui.data import patch_stat
from nightlab.tui.diffparse import parse_unified, side_by_side
from nightlab.tui.logfiles import LineIndex, TailReader
from nightlab.tui.themes import available_themes, load_theme
from nightlab.tui.userconfig import config_path, load_user_config, save_theme
from nightlab.tui.widgets.experiments import status_label, tree_order

DIFF = """\
diff --git a/train.py b/train.py
index 1111111..2222222 100644
--- a/train.py
+++ b/train.py
@@ -2,4 +2,4 @@ import sys
 x = 1
-LR = 0.1
-EPOCHS = 3
+LR = 0.3
 y = 2
diff --git a/new.py b/new.py
new file mode 100644
--- /dev/null
+++ b/new.py
@@ -0,0 +1 @@
+print("hi")
"""


def test_unified_diff_parses_files_and_line_numbers() -> None:
    files = parse_unified(DIFF)
    assert [(f.path, f.added, f.removed) for f in files] == [("train.py", 1, 2), ("new.py", 1, 0)]
    lines = files[0].lines
    assert (lines[1].kind, lines[1].old_no, lines[1].new_no) == ("ctx", 2, 2)
    assert (lines[2].kind, lines[2].old_no) == ("del", 3)
    assert (lines[4].kind, lines[4].new_no, lines[4].text) == ("add", 3, "LR = 0.3")
    assert files[1].old_path == "/dev/null" and files[1].label == "new.py"
    assert patch_stat(DIFF) == (2, 2, 2)


def test_side_by_side_pairs_removals_with_additions() -> None:
    rows = side_by_side(parse_unified(DIFF)[0])
    pairs = [(a.text if a else None, b.text if b else None) for a, b in rows[2:4]]
    assert pairs == [("LR = 0.1", "LR = 0.3"), ("EPOCHS = 3", None)]


def test_braille_canvas_draws_lines_and_markers() -> None:
    c = braille.Canvas(4, 2)
    braille.plot(c, [0, 1, 2], [0.0, 1.0, 0.0], 0, x_range=(0, 2), y_range=(0, 1))
    cells = c.cells()
    assert len(cells) == 2 and all(len(r) == 4 for r in cells)
    assert any(ch != " " for r in cells for ch, _ in r)
    m = braille.Canvas(2, 1)
    braille.plot(m, [0], [0.5], 1, x_range=(0, 1), y_range=(0, 1), connect=False)
    assert sum(ch != " " for ch, _ in m.cells()[0]) == 1 and m.cells()[0][0][1] == 1
    assert braille.value_range([1.0, 1.0]) != (1.0, 1.0)
    assert len(braille.downsample([(float(i), 0.0) for i in range(1000)], 50)) == 50


def test_tail_reader_returns_complete_lines_and_survives_rewrites(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    reader = TailReader(log, initial_bytes=64)
    assert reader.read() == []  # not there yet
    log.write_text("a\nb\npartial")
    assert reader.read() == ["a", "b"]
    with open(log, "a") as f:
        f.write(" line\r50%\r100%\n")
    assert reader.read() == ["100%"]  # progress bars: what the terminal would show
    log.write_text("fresh\n")  # a re-run replaced the file
    assert reader.read() == ["fresh"]
    log.write_text("".join(f"{i:04d}\n" for i in range(100)))
    tail = TailReader(log, initial_bytes=20)
    assert tail.read() == [f"{i:04d}" for i in range(96, 100)] and tail.skipped_bytes == 480


def test_line_index_reads_any_line_and_searches(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(10000)) + "needle here\nlast")
    idx = LineIndex(log)
    assert idx.update(block=4096)
    assert idx.line_count == 10002
    assert idx.line(0) == "line 0" and idx.line(9999) == "line 9999" and idx.line(10001) == "last"
    assert idx.find("NEEDLE", 0) == 10000
    assert idx.find("line 5", 10001, forward=False) == 5999
    assert idx.find("nothing", 0) is None
    with open(log, "a") as f:
        f.write(" line\nmore\n")
    assert idx.update()
    assert idx.line(10001) == "last line" and idx.line_count == 10003


def test_user_config_keys_theme_and_problems(tmp_path: Path) -> None:
    path = config_path()
    assert load_user_config().keys == {}
    path.parent.mkdir(parents=True)
    path.write_text('# my settings\n[keys]\napprove = "y"\nreject = 3\n')
    cfg = load_user_config()
    assert cfg.keys == {"approve": "y"} and cfg.problems and "keys.reject" in cfg.problems[0]
    save_theme("light")
    text = path.read_text()
    assert text.startswith('theme = "light"\n# my settings') and 'approve = "y"' in text
    save_theme("dark")
    assert path.read_text().count("theme =") == 1 and load_user_config().theme == "dark"
    path.write_text("not toml [")
    assert load_user_config().problems


def test_keymap_ids_and_themes() -> None:
    assert keymap.unknown_ids({"approve": "y", "nope": "k"}) == ["nope"]
    assert all(b.id for b in keymap.bindings("main"))  # type: ignore[union-attr]
    assert {"dark", "light"} <= set(available_themes())
    light = load_theme("light")
    assert light.base == "textual-light" and not light.dark and "$nl-panel" in light.css


def test_tree_order_draws_guides() -> None:
    rows = build_rows([
        {"id": i, "parent": p, "title": f"t{i}", "status": "kept", "kind": "x", "metric": None, "runs": 0,
         "delta": None, "seconds": None, "seed": 0, "stage": None, "failure_class": None}
        for i, p in [(1, None), (2, 1), (3, 2), (4, 1)]
    ])
    assert [(r.id, g) for r, g in tree_order(rows)] == [(1, ""), (2, "├─ "), (3, "│  └─ "), (4, "└─ ")]


def test_a_best_kept_on_one_seed_is_labelled_kept_question_mark() -> None:
    base = {"parent": None, "title": "t", "status": "kept", "kind": "x", "metric": 0.5, "runs": 1, "delta": None,
            "seconds": None, "seed": 0, "stage": None, "failure_class": None}
    rows = build_rows([{**base, "id": 1}, {**base, "id": 2, "parent": 1, "unconfirmed": True}])
    assert [r.unconfirmed for r in rows] == [False, True]
    assert status_label(rows[1], best=True) == "★ kept?"
    assert status_label(rows[0], best=False) == "✓ kept"
