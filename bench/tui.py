"""TUI budgets from DESIGN.md, printed as figures (never a test).

- time to first frame: the real `nightlab` executable in a pseudo-terminal, from exec to the first status line
  on screen (budget < 1.0 s), and to the first data from the store; idle, and again with --jobs training jobs
  running (processes that burn a core each and write their logs, recorded as running jobs of the project)
- first ctrl+p: from the key to the command palette on screen, the first time it opens in a fresh process
- log lines/s sustained: a separate process writes a job's log at --rate lines/s for --seconds; how many lines per
  second the live pane takes in (budget 20,000 lines/s), and flat out with no rate limit
- key latency while the log floods: key events posted to the running app, time until their action runs
  (budget < 50 ms)

Usage: .venv/bin/python bench/tui.py [--seconds 5] [--rate 20000] [--frames 5] [--jobs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests" / "tui"))
sys.path.insert(0, str(HERE))

WRITER = r"""
import sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
line = "step {} loss 0.123456 lr 0.001 grad_norm 1.2345 tokens/s 123456 some more text to look like a log\n"
with open(path, "a", buffering=1 << 20) as f:
    t0 = time.perf_counter(); n = 0
    while (now := time.perf_counter()) - t0 < seconds:
        due = int((now - t0) * rate) if rate > 0 else n + 2000
        if due > n:
            f.write("".join(line.format(i) for i in range(n, due))); f.flush(); n = due
        else:
            time.sleep(0.002)
print(n)
"""

# a training job as far as the machine sees it: one core busy, a log line every few hundred thousand steps
BURNER = r"""
import sys
with open(sys.argv[1], "a", buffering=1) as f:
    i = 0
    while True:
        x = 0
        for k in range(300_000):
            x += k * k
        i += 1
        f.write(f"step {i} loss {1 / (i + 1):.4f}\n")
"""
# the command palette's prompt, on screen once it is open; without its first letter, which the blinking cursor
# covers half the time (waiting for the whole word measured up to one blink late)
PALETTE = b"earch for commands"


def project(tmp: Path) -> tuple[Path, object]:
    import tuikit

    root = tuikit.make_project(tmp / "proj")
    return root, tuikit.populate(root)


# ------------------------------------------------------------------------------------------------ first frame
def first_frame(root: Path, xdg: Path) -> tuple[float, float, float]:
    """Seconds from exec to the status line on screen, and to the first data from the store; then the seconds from
    the first ctrl+p to the command palette on screen (nan when it did not open within 10 s)."""
    env = {k: v for k, v in os.environ.items() if k != "NIGHTLAB_NO_TUI"}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(xdg), COLUMNS="120", LINES="40")
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(root)
        os.execve(str(HERE / ".venv" / "bin" / "nightlab"), ["nightlab"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    buf = b""
    frame = data = 0.0
    deadline = t0 + 20
    while time.perf_counter() < deadline and not data:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            buf += chunk
            if not frame and b"STEP" in buf:
                frame = time.perf_counter() - t0
            if frame and b"runs 4/6" in buf:
                data = time.perf_counter() - t0
    palette = float("nan")
    if data:
        time.sleep(0.3)  # let the first data settle, as a person's first key would
        while select.select([fd], [], [], 0)[0]:
            try:
                os.read(fd, 65536)
            except OSError:
                break
        buf = b""
        sent = time.perf_counter()
        os.write(fd, b"\x10")  # ctrl+p
        while time.perf_counter() - sent < 10:
            r, _, _ = select.select([fd], [], [], 0.01)
            if r:
                try:
                    buf = buf[-64:] + os.read(fd, 65536)
                except OSError:
                    break
                if PALETTE in buf:
                    palette = time.perf_counter() - sent
                    break
        os.write(fd, b"\x1b")  # close it
        time.sleep(0.2)
    os.write(fd, b"q")
    end = time.perf_counter() + 10
    while time.perf_counter() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                if not os.read(fd, 65536):
                    break
            except OSError:
                break
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(fd)
    return frame, data, palette


def with_running_jobs(tmp: Path, n: int) -> tuple[Path, list[subprocess.Popen[bytes]], Any]:
    """A fresh populated project with `n` training jobs running: each a process burning one core and writing its
    log, recorded as a running job of one of the project's experiments (so the TUI shows and tails them), and the
    project's lock held, as the engine that runs them holds it (the TUI follows that engine, starts none)."""
    from nightlab.agent.lock import ProjectLock

    root, ids = project(tmp)
    procs = []
    for exp_id in [ids.worse, ids.failed, ids.proposed][:n]:  # type: ignore[attr-defined]
        log = running_job(root, exp_id, "busy")
        procs.append(subprocess.Popen([sys.executable, "-c", BURNER, str(log)], stdout=subprocess.DEVNULL))
    lock = ProjectLock(root / ".nightlab")
    lock.acquire("bench")
    return root, procs, lock


def report_frames(label: str, frames: list[tuple[float, float, float]]) -> None:
    ff = statistics.median(f[0] for f in frames)
    fd = statistics.median(f[1] for f in frames)
    pal = [f[2] for f in frames if f[2] == f[2]]
    print(f"time to first frame, {label}: {ff:.3f} s median of {len(frames)} (budget < 1.0 s) "
          f"[{', '.join(f'{f[0]:.2f}' for f in frames)}]; first data from the store: {fd:.3f} s")
    if pal:
        print(f"first ctrl+p to the palette on screen, {label}: {statistics.median(pal) * 1000:.0f} ms median of "
              f"{len(pal)} [{', '.join(f'{p * 1000:.0f}' for p in pal)}]")
    else:
        print(f"first ctrl+p, {label}: the palette did not open within 10 s")


# ------------------------------------------------------------------------------------------------ real terminal
def running_job(root: Path, exp_id: int, tag: str) -> Path:
    """Mark an experiment as running with an empty log (the writer process plays the training job)."""
    from nightlab.agent.store import Store

    store = Store(root / ".nightlab" / "nightlab.db")
    run_dir = root / ".nightlab" / "runs" / f"{exp_id}.{tag}"
    run_dir.mkdir(parents=True)
    log = run_dir / "output.log"
    log.write_text("")
    job = store.add_job(exp_id, str(run_dir), str(log), "cpu0")
    store.update_job(job.id, state="running")
    store.update_experiment(exp_id, status="running")
    store.close()
    return log


def pty_key_latency(root: Path, ids: object, xdg: Path, rate: float, seconds: float) -> list[float]:
    """Keys typed into the real executable in a pseudo-terminal while the log floods: seconds from the key to
    the changed screen arriving on the terminal (so rendering and output are included)."""
    from nightlab.agent.lock import ProjectLock

    log = running_job(root, ids.worse, "pty")  # type: ignore[attr-defined]
    lock = ProjectLock(root / ".nightlab")
    lock.acquire("bench")  # plays the engine, so the TUI does not resume the session itself
    env = {k: v for k, v in os.environ.items() if k != "NIGHTLAB_NO_TUI"}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(xdg))
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(root)
        os.execve(str(HERE / ".venv" / "bin" / "nightlab"), ["nightlab"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    latencies: list[float] = []

    def read_until(marker: bytes | None, timeout: float) -> bool:
        buf = b""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            r, _, _ = select.select([fd], [], [], 0.01)
            if r:
                try:
                    buf += os.read(fd, 1 << 16)
                except OSError:
                    return False
                if marker is not None and marker in buf:
                    return True
                buf = buf[-256:]
        return False

    try:
        read_until(b"runs 4/6", 20)
        read_until(None, 1.0)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(rate), str(seconds)],
                                  stdout=subprocess.DEVNULL)
        read_until(None, 0.5)
        ranked = False
        while writer.poll() is None:
            ranked = not ranked
            t0 = time.perf_counter()
            os.write(fd, b"t")
            if read_until(b"ranked by acc" if ranked else b"\xc2\xb7 tree", 2.0):
                latencies.append(time.perf_counter() - t0)
            read_until(None, 0.1)
        writer.wait()
    finally:
        os.write(fd, b"q")
        read_until(None, 2.0)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
        lock.release()
    return latencies


# ------------------------------------------------------------------------------------------------ flood
async def flood(root: Path, ids: object, rate: float, seconds: float, keys: bool) -> dict[str, float]:
    from textual import events

    from nightlab.agent.store import Store
    from nightlab.tui.app import NightlabApp
    from nightlab.tui.screens.main import MainScreen
    from nightlab.tui.widgets.experiments import ExperimentTable
    from nightlab.tui.widgets.logpane import LogTail

    exp_id = ids.proposed  # type: ignore[attr-defined]
    store = Store(root / ".nightlab" / "nightlab.db")
    run_dir = root / ".nightlab" / "runs" / f"{exp_id}.flood{int(rate)}"
    run_dir.mkdir(parents=True)
    log = run_dir / "output.log"
    log.write_text("")
    job = store.add_job(exp_id, str(run_dir), str(log), "cpu0")
    store.update_job(job.id, state="running")
    store.update_experiment(exp_id, status="running")

    handled: list[float] = []
    original = MainScreen.action_toggle_view

    def probe(self: MainScreen) -> None:
        handled.append(time.perf_counter())
        original(self)

    MainScreen.action_toggle_view = probe  # type: ignore[method-assign]
    app = NightlabApp(root, start="never", grace_s=0.0)
    latencies: list[float] = []
    samples: list[tuple[float, int]] = []
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while app.snapshot is None:
                await pilot.pause(0.02)
            table = app.main.query_one(ExperimentTable)  # type: ignore[union-attr]
            table.select(exp_id)
            pane = app.main.query_one(LogTail)  # type: ignore[union-attr]
            await pilot.pause(0.3)
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(rate), str(seconds)],
                                      stdout=subprocess.PIPE, text=True)
            t0 = time.perf_counter()
            while writer.poll() is None:
                if keys:
                    before = len(handled)
                    sent = time.perf_counter()
                    app.post_message(events.Key("t", "t"))
                    while len(handled) == before and time.perf_counter() - sent < 2:
                        await asyncio.sleep(0.001)
                    if len(handled) > before:
                        latencies.append(handled[-1] - sent)
                samples.append((time.perf_counter() - t0, pane.received))
                await asyncio.sleep(0.1)
            written = int((writer.stdout.read() if writer.stdout else "0").strip() or 0)
            end = time.perf_counter()
            while pane.received < written and time.perf_counter() - end < 5:
                await pilot.pause(0.02)
            drained = time.perf_counter() - end
            shown = pane.received
    finally:
        MainScreen.action_toggle_view = original  # type: ignore[method-assign]
    # sustained rate: lines taken in over the writing window (after the first half second of warm-up)
    warm = [s for s in samples if s[0] >= 0.5]
    sustained = (warm[-1][1] - warm[0][1]) / (warm[-1][0] - warm[0][0]) if len(warm) >= 2 else float("nan")
    out = {"written": written, "shown": shown, "sustained": sustained, "drain_s": drained}
    if latencies:
        lat = sorted(latencies)
        out.update(key_median=statistics.median(lat), key_p95=lat[int(0.95 * (len(lat) - 1))], key_max=lat[-1],
                   keys=len(lat))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--frames", type=int, default=5, help="first-frame measurements (median reported)")
    ap.add_argument("--jobs", type=int, default=2, choices=range(0, 4),
                    help="training jobs running during the second first-frame measurement (0: skip it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "xdg")
        root, ids = project(tmp)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        report_frames("idle project", [first_frame(root, tmp / "xdg") for _ in range(args.frames)])
        if args.jobs:
            busy, procs, lock = with_running_jobs(tmp / "busy", args.jobs)
            try:
                time.sleep(1.0)
                print(f"  with {args.jobs} jobs running: load average {os.getloadavg()[0]:.2f}")
                report_frames(f"{args.jobs} training jobs running",
                              [first_frame(busy, tmp / "xdg") for _ in range(args.frames)])
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
                lock.release()
        r = asyncio.run(flood(root, ids, args.rate, args.seconds, keys=True))
        print(f"log stream at {args.rate:,.0f} lines/s offered for {args.seconds:g} s: {r['sustained']:,.0f} lines/s "
              f"sustained into the pane (budget 20,000); {int(r['shown']):,} of {int(r['written']):,} lines shown, "
              f"caught up {r['drain_s']:.2f} s after the writer stopped")
        if "key_median" in r:
            print(f"key latency while flooding: median {r['key_median'] * 1000:.1f} ms, p95 {r['key_p95'] * 1000:.1f}"
                  f" ms, max {r['key_max'] * 1000:.1f} ms over {int(r['keys'])} keys (budget < 50 ms)")
        lat = sorted(pty_key_latency(root, ids, tmp / "xdg", args.rate, args.seconds))
        if lat:
            print(f"key to screen in a real terminal while flooding: median {statistics.median(lat) * 1000:.1f} ms, "
                  f"p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms over "
                  f"{len(lat)} keys (budget < 50 ms)")
        r = asyncio.run(flood(root, ids, 0, min(args.seconds, 3.0), keys=False))
        print(f"log stream flat out (no rate limit, {min(args.seconds, 3.0):g} s): {r['sustained']:,.0f} lines/s "
              f"into the pane; {int(r['written']):,} lines written by the job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
