"""End to end: the real `nightlab` executable in tmux on a tiny project — start, approve, run, review, promote —
and the commit lands on the user's branch. Keys go in with send-keys; the screen is read with capture-pane."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tuikit import git, make_project, store_of

NIGHTLAB = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "nightlab"
TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install -y tmux)"),
    pytest.mark.skipif(not NIGHTLAB.exists(), reason=f"{NIGHTLAB} is missing (make installs it)"),
]


class Tmux:
    """One private tmux server (its own socket) running one window."""

    def __init__(self, sock: Path) -> None:
        self.sock = str(sock)

    def __call__(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run([TMUX, "-S", self.sock, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "e2e")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "e2e", *keys)

    def wait(self, cond: Callable[[str], bool], what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if cond(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{text}")


def test_approve_run_review_promote_through_the_real_executable(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj", budget=2, noise_seeds=1, confirm=False)
    head = git(root, "rev-parse", "HEAD").strip()
    # COLUMNS / LINES (set by some test runners, e.g. in pytest-xdist workers) would override the pane's size
    env = {k: v for k, v in os.environ.items() if k not in ("NIGHTLAB_NO_TUI", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    (root / "src").mkdir()  # opened from a subfolder: nightlab finds the project upward, as git does
    inner = f"cd {shlex.quote(str(root / 'src'))} && {shlex.quote(str(NIGHTLAB))}; echo EXITED $?; sleep 60"
    tmux = Tmux(tmp_path / "tmux.sock")
    subprocess.run([TMUX or "tmux", "-S", tmux.sock, "new-session", "-d", "-x", "120", "-y", "40", "-s", "e2e",
                    inner], check=True, env=env)
    try:
        tmux.wait(lambda s: "STEP" in s and "engine not started" in s, "the first frame")
        tmux.keys("s")  # start a new session: asked first (it spends budget)
        tmux.wait(lambda s: "Start a new session of up to 2 runs?" in s, "the confirmation")
        tmux.keys("y")  # the baseline runs without asking, then the agent proposes
        tmux.wait(lambda s: "run?" in s and "engine waiting" in s, "a proposal waiting for approval")
        time.sleep(0.6)  # the grace period: keys typed before a prompt appears do not count
        tmux.keys("a")
        screen = tmux.wait(lambda s: "engine done" in s, "the approved run to finish the session")
        assert "0 left" in screen
        tmux.keys("p")  # review the selected (just finished) experiment against main
        screen = tmux.wait(lambda s: "Promote #2 onto main" in s, "the review screen")
        assert "train.py" in screen and "+ LR = " in screen
        time.sleep(0.6)
        tmux.keys("a")
        tmux.wait(lambda s: "Committed" in s, "the promote")
        tmux.keys("q")
        tmux.wait(lambda s: "EXITED 0" in s, "a clean exit", timeout=30)
    finally:
        subprocess.run([TMUX or "tmux", "-S", tmux.sock, "kill-server"], capture_output=True)
    log = git(root, "log", "--format=%H %P%n%B", "-1", "main")
    first = log.splitlines()[0].split()
    assert first[1] == head  # one new commit on the user's branch, on top of where it was
    assert "Promoted from nightlab experiment #2" in log
    assert "LR = 0.1" not in (root / "train.py").read_text()
    assert git(root, "status", "--porcelain").strip() == ""  # the working tree matches the commit
    finished = [ev["message"] for ev in store_of(root).events() if ev["kind"] == "finished"]
    # a duration as every pane writes it (13.8s): "(0.4 s)" wrapped its unit onto the events pane's next line
    assert finished and all(re.search(r" \(\d+\.\ds\)$", m) for m in finished), finished


def _open_in_tmux(tmp_path: Path, cwd: Path, *args: str, size: tuple[int, int] = (100, 30)) -> Tmux:
    """The real executable in a private tmux server, started in `cwd`; the pane stays after it exits."""
    env = {k: v for k, v in os.environ.items() if k not in ("NIGHTLAB_NO_TUI", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    cmd = " ".join(shlex.quote(a) for a in (str(NIGHTLAB), *args))
    inner = f"cd {shlex.quote(str(cwd))} && {cmd}; echo EXITED $?; sleep 60"
    tmux = Tmux(tmp_path / "tmux.sock")
    subprocess.run([TMUX or "tmux", "-S", tmux.sock, "new-session", "-d", "-x", str(size[0]), "-y", str(size[1]),
                    "-s", "e2e", inner], check=True, env=env)
    return tmux


@pytest.mark.parametrize("args", [(), ("tui",)])
def test_the_tui_in_a_subfolder_of_a_repository_sets_up_its_root(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Issue 18, item 6: opened in a subfolder of a repository without nightlab.toml, the TUI offers to set up the
    repository (it said the subfolder was not set up and `i` answered "not a git repository")."""
    root = make_project(tmp_path / "proj")
    (root / "nightlab.toml").unlink()
    git(root, "commit", "-qam", "no config yet")
    sub = root / "src" / "models"
    sub.mkdir(parents=True)
    tmux = _open_in_tmux(tmp_path, sub, *args)
    try:
        screen = tmux.wait(lambda s: "not set up for nightlab" in s, "the setup offer")
        assert "not a git repository" not in screen
        tmux.keys("i")
        screen = tmux.wait(lambda s: any(w in s for w in ("nightlab is set up", "EXITED", "not a git")), "init",
                           timeout=120)
        assert "python train.py" in screen and "not a git repository" not in screen, screen
        tmux.keys("q")
        tmux.wait(lambda s: "EXITED 0" in s, "a clean exit", timeout=30)
    finally:
        subprocess.run([TMUX or "tmux", "-S", tmux.sock, "kill-server"], capture_output=True)
    assert (root / "nightlab.toml").is_file() and not (sub / "nightlab.toml").exists()
    assert not (root / "src" / ".nightlab").exists() and not (sub / ".nightlab").exists()


@pytest.mark.parametrize("args", [("-C", "{missing}"), ("-C", "{missing}", "tui")])
def test_the_tui_on_a_folder_that_does_not_exist_says_so(tmp_path: Path, args: tuple[str, ...]) -> None:
    """`-C` to a missing folder is one line naming it, from a terminal too (it said "no nightlab.toml")."""
    missing = f"/nonexistent-nightlab-{os.getpid()}"  # short: a temp path's length wraps at the terminal's edge
    assert not os.path.exists(missing)
    tmux = _open_in_tmux(tmp_path, tmp_path, *(a.format(missing=missing) for a in args))
    try:
        screen = tmux.wait(lambda s: "EXITED" in s, "the exit", timeout=30)
    finally:
        subprocess.run([TMUX or "tmux", "-S", tmux.sock, "kill-server"], capture_output=True)
    said = [ln for ln in screen.splitlines() if ln.strip()]
    assert said[:2] == [f"nightlab: {missing}: no such folder", "EXITED 2"], screen
