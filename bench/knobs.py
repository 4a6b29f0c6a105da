"""Knob discovery in Python files: libcst's public API (now) against the private `CodegenState` scanner it replaced.

The scanner used to subclass libcst's private `CodegenState` and walk the tree by generating its code (one parse plus
one cheap pass). It now walks the tree with a public `CSTVisitor` and places the literals it claims with the standard
tokenizer, falling back to `ByteSpanPositionProvider` where the two do not line up. This prints, for nanoGPT's files
and the shared tasks' train.py, the median time of one uncached scan (parse included) by each, in interleaved rounds
so that a busy machine slows both alike; then checks that both find the same knobs at the same spans, over those
files and any more given, and says how often the exact fallback was needed.

Usage: .venv/bin/python bench/knobs.py [--rounds N] [--old REV] [MORE.py or DIR ...]
(REV: a commit whose nightlab/agent/policy/knobs.py, one module then, is the old scanner; default 4442949.)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nightlab.agent.policy import knobs as new  # noqa: E402

SHARED = ROOT.parent / "shared"
TIMED = [SHARED / "repos/nanogpt/src/train.py", SHARED / "repos/nanogpt/src/model.py",
         *sorted((SHARED / "tasks").glob("*/train.py"))]


def load_old(rev: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:nightlab/agent/policy/knobs.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "knobs_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("knobs_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["knobs_old"] = module
    spec.loader.exec_module(module)
    return module


def found(mod: Any, path: Path, text: str) -> list[tuple[str, Any, str, int, int]]:
    return [(f.knob.name, f.knob.value, f.knob.kind, f.start, f.end)
            for f in sorted(mod._scan_python(str(path), text, (text,)), key=lambda f: f.start)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--old", default="4442949")
    ap.add_argument("more", nargs="*", type=Path)
    args = ap.parse_args()
    old = load_old(args.old)
    files = [f for f in TIMED if f.exists()]
    texts = {f: f.read_text() for f in files}

    times: dict[tuple[Path, str], list[float]] = {(f, k): [] for f in files for k in ("old", "new")}
    for _ in range(args.rounds):
        for f in files:
            for k, mod in (("old", old), ("new", new)) if _ % 2 == 0 else (("new", new), ("old", old)):
                t = time.perf_counter()
                mod._scan_python(str(f), texts[f], (texts[f],))
                times[(f, k)].append(time.perf_counter() - t)
    print(f"one uncached scan, median of {args.rounds} interleaved rounds (ms):")
    print(f"{'file':44s} {'lines':>6s} {'old':>8s} {'new':>8s} {'new/old':>8s}")
    tot_old = tot_new = 0.0
    for f in files:
        o, n = statistics.median(times[(f, "old")]) * 1000, statistics.median(times[(f, "new")]) * 1000
        tot_old, tot_new = tot_old + o, tot_new + n
        print(f"{f.relative_to(SHARED)!s:44s} {texts[f].count(chr(10)):6d} {o:8.1f} {n:8.1f} {n / o:8.2f}")
    print(f"{'all':44s} {'':6s} {tot_old:8.1f} {tot_new:8.1f} {tot_new / tot_old:8.2f}")

    exact = 0
    real = new._spans_exact

    def counting(*a: Any) -> Any:
        nonlocal exact
        exact += 1
        return real(*a)

    new._spans_exact = counting  # type: ignore[assignment]
    checked = list(files)
    for m in args.more:
        checked += sorted(m.rglob("*.py")) if m.is_dir() else [m]
    same = differ = 0
    for f in checked:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > 300_000:
            continue
        if found(old, f, text) == found(new, f, text):
            same += 1
        else:
            differ += 1
            print(f"DIFFERS: {f}")
    new._spans_exact = real  # type: ignore[assignment]
    print(f"same knobs at the same spans: {same} of {same + differ} files; the exact fallback was needed in {exact}")


if __name__ == "__main__":
    main()
