"""Escape attempts from inside a training job: attempt x layer x (root, user) -> blocked / contained / gap.

    python bench/escape.py [--layers none,bwrap,landlock,landlock-plain] [--who root,user] [--json FILE]

Each attempt is what an attacker inside a training job would try against the machinery around it (the attacks of
issue 14). They run through the real detached wrapper (`runner.launch`), in every confinement layer this machine
offers, once as the user running this script and, when that is root, once more as an unprivileged user made for
the purpose (`nightlab-escape`, created with useradd when missing). The jobs, and the agent-side reads nightlab does
(`nightlab log`, `status`, `stop`), run in a driver process started as that user (`--driver PLAN`); this process
sets up what lies outside (listening sockets, a victim process with secrets in its command line and environment, a
victim file) and judges afterwards what the user can observe.

Verdicts:
- blocked: the attempt itself failed (a write refused, a connect refused, nothing found);
- contained: the attempt did something, but nothing outside the sandbox changed and nightlab was not fooled (a file
  written into the job's private /tmp, a forged status file that nightlab ignored, a module beside a protected script
  that the wrapper reported);
- gap: the attempt reached outside. Every gap that is expected is listed in EXPECTED_GAPS with the reason (a layer
  that cannot enforce it: layer 0 is the user's own rights; plain Landlock has no namespaces); anything else is an
  escape and a bug. tests/test_escape.py runs the same matrix and asserts exactly these verdicts.

layers: none (layer 0, `--unsafe-no-sandbox`), bwrap (layer 1), landlock (layer 2, with the private namespaces the
launcher makes where the kernel lets it), landlock-plain (layer 2 without them: what machines without user namespaces
get; forced with NIGHTLAB_CONFINE_NO_NAMESPACES=1).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST_USER = "nightlab-escape"
LAYERS: dict[str, tuple[str, dict[str, str]]] = {
    "none": ("none", {}),
    "bwrap": ("bwrap", {}),
    "landlock": ("landlock", {}),
    "landlock-plain": ("landlock", {"NIGHTLAB_CONFINE_NO_NAMESPACES": "1"}),
}
BLOCKED, CONTAINED, GAP = "blocked", "contained", "gap"
MEM_CAP_MB = 100

# ----------------------------------------------------------------------------------------------------- attempts
# (name, what the job tries); judged in `judge`
ATTEMPTS: list[tuple[str, str]] = [
    ("capabilities", "keep capabilities (CapEff != 0)"),
    ("remount-root", "remount / read-write"),
    ("umount-tmp", "umount -l /tmp to reach the host's /tmp"),
    ("write-outside", "write a file outside the worktree and run dir"),
    ("read-home", "read a secret in the user's home"),
    ("unix-socket-run", "connect to a named unix socket under /run (D-Bus, docker.sock)"),
    ("unix-socket-elsewhere", "connect to a named unix socket elsewhere (/var/lib/...)"),
    ("unix-socket-abstract", "connect to an abstract unix socket"),
    ("cmdline", "read another process's command line (a secret argument)"),
    ("environ", "read another process's environment"),
    ("wrapper-environ", "read the job wrapper's environment (API keys)"),
    ("shm-leftover", "leave a file in /dev/shm that outlives the job"),
    ("tmp-leftover", "leave a file in /tmp that outlives the job"),
    ("shm-fill", f"fill /dev/shm past the memory cap ({MEM_CAP_MB} MB)"),
    ("stop-reason-link", "replace stop.reason by a link, then `nightlab stop` writes through it"),
    ("log-link-secret", "replace output.log by a link to a secret, for `nightlab log` and the store"),
    ("log-fifo", "replace output.log by a FIFO, so `status` / `log` hang"),
    ("log-dev-zero", "replace output.log by a link to /dev/zero, so the reader runs out of memory"),
    ("forged-status", "write status.json 'succeeded' while running, then fail"),
    ("forged-pid", "point pid.json at another process of the user, for `nightlab stop` to signal"),
    ("malformed-pid", "write a malformed pid.json, for `run` / `status` / `stop` to crash on"),
    ("shadow-module", "add json.py beside a protected eval.py that imports json"),
    ("orphan-output", "print from an orphaned child after the main process exited"),
]

# (attempt, layer, who) -> why this gap is accepted; who "*" = both
EXPECTED_GAPS: dict[tuple[str, str, str], str] = {}
_L0 = "layer 0 runs the job with the user's own rights (--unsafe-no-sandbox)"
for _a in ("write-outside", "read-home", "unix-socket-run", "unix-socket-elsewhere", "unix-socket-abstract",
           "cmdline", "shm-leftover", "tmp-leftover", "shm-fill"):
    EXPECTED_GAPS[(_a, "none", "*")] = _L0
# as root, layer 0 drops the job's capabilities: a process without them may not read the environment of one that
# has them (other root processes), while any user's job reads its own user's
EXPECTED_GAPS[("environ", "none", "user")] = _L0
_PLAIN = "Landlock without namespaces cannot"
EXPECTED_GAPS[("unix-socket-run", "landlock-plain", "*")] = f"{_PLAIN} refuse connecting to named sockets"
EXPECTED_GAPS[("unix-socket-elsewhere", "landlock-plain", "*")] = f"{_PLAIN} refuse connecting to named sockets"
EXPECTED_GAPS[("cmdline", "landlock-plain", "*")] = f"{_PLAIN} hide /proc/PID/cmdline (world-readable)"
EXPECTED_GAPS[("cmdline", "landlock", "user")] = ("a hidden /proc needs a PID namespace; the launcher makes one only "
                                                   "as root")
EXPECTED_GAPS[("shm-leftover", "landlock-plain", "*")] = f"{_PLAIN} give a private /dev/shm (data loaders need one)"
EXPECTED_GAPS[("shm-fill", "landlock-plain", "*")] = f"{_PLAIN} bound the host's /dev/shm"


def expected_gap(attempt: str, layer: str, who: str) -> str:
    return EXPECTED_GAPS.get((attempt, layer, who)) or EXPECTED_GAPS.get((attempt, layer, "*")) or ""


# ----------------------------------------------------------------------------------------------------- jobs
PREAMBLE = """import json as _j
globals().update(_j.load(open('escape_consts.json')))
def ready():  # tell the driver (a file in the worktree: the log may be what the job replaced)
    open('READY', 'w').close()
    print('READY', flush=True)
def plant(name, make):  # replace a file of the run dir as an attacker would, and say whether that worked
    import os as _o
    path = _o.path.join(RUN_DIR, name)
    try:
        if _o.path.lexists(path):
            _o.unlink(path)
        make(path)
        print('PLANTED', flush=True)
    except OSError as e:
        print('REFUSED', e.errno, flush=True)
def wait_for_driver():  # the driver creates ACTED in the worktree once it has done what nightlab does meanwhile
    import os as _o, time as _t
    for _ in range(300):
        if _o.path.exists('ACTED'):
            return
        _t.sleep(0.05)
"""
PROBE_JOB = r'''
import ctypes, glob, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def out(name, *words):
    print("PROBE", name, *words, flush=True)
def attempt(name, fn):
    try:
        out(name, fn())
    except OSError as e:
        out(name, "refused", e.errno)
status = open("/proc/self/status").read()
out("capabilities", [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0])
def remount():
    for flags in (32, 32 | 4096):  # MS_REMOUNT, MS_REMOUNT | MS_BIND
        if libc.mount(b"none", b"/", None, ctypes.c_ulong(flags), None) == 0:
            return "done"
    raise OSError(ctypes.get_errno(), "mount")
attempt("remount-root", remount)
def umount():
    if libc.umount2(b"/tmp", 2) == 0:
        return "done"
    raise OSError(ctypes.get_errno(), "umount2")
attempt("umount-tmp", umount)
def write_outside():
    with open(OUTSIDE_FILE, "w") as f:
        f.write("escaped")
    return "done"
attempt("write-outside", write_outside)
attempt("read-home", lambda: "found" if SECRET_HOME in open(HOME_SECRET_PATH).read() else "other")
def connect(addr):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(addr)
    s.close()
    return "done"
attempt("unix-socket-run", lambda: connect(SOCK_RUN))
attempt("unix-socket-elsewhere", lambda: connect(SOCK_ELSEWHERE))
attempt("unix-socket-abstract", lambda: connect("\0" + ABSTRACT))
def scan(kind, needle):
    for p in glob.glob("/proc/[0-9]*/" + kind):
        try:
            if needle.encode() in open(p, "rb").read():
                return "found"
        except OSError:
            pass
    return "not-found"
out("cmdline", scan("cmdline", SECRET_CMD))
out("environ", scan("environ", SECRET_ENV))
def wrapper_environ():
    pid = os.getpid()
    while pid > 1:  # up the ancestry to the wrapper (`python -m nightlab.sandbox.runner RUN_DIR`)
        try:
            stat = open("/proc/%d/stat" % pid).read()
            cmd = open("/proc/%d/cmdline" % pid, "rb").read()
        except OSError:
            return "not-found"
        if b"nightlab.sandbox.runner" in cmd:
            return "found" if SECRET_API.encode() in open("/proc/%d/environ" % pid, "rb").read() else "not-found"
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return "not-found"
attempt("wrapper-environ", wrapper_environ)
attempt("shm-leftover", lambda: open("/dev/shm/" + LEFTOVER, "w").write("x") and "done")
attempt("tmp-leftover", lambda: open("/tmp/" + LEFTOVER, "w").write("x") and "done")
'''

SHM_FILL_JOB = r'''
import os, sys
written = 0
try:
    with open("/dev/shm/" + LEFTOVER + "-fill", "wb") as f:
        block = b"\1" * (1 << 20)
        for _ in range(3 * CAP_MB):
            f.write(block)
            f.flush()
            written += 1
            if written % 10 == 0:
                print("WROTE", written, flush=True)
except OSError as e:
    print("REFUSED", written, e.errno, flush=True)
print("DONE", written, flush=True)
'''

def _log_job(make: str) -> str:
    """A job that prints, then replaces its log the way `make` (an expression of the path `p`) does."""
    return f"""
import os, time
print("PRINTED-BY-THE-JOB", flush=True)
ready()
time.sleep(0.3)
plant("output.log", lambda p: {make})
wait_for_driver()
"""


CONTROL_JOBS: dict[str, str] = {
    "stop-reason-link": """
import os, time
plant("stop.reason", lambda p: os.symlink(VICTIM_FILE, p))
ready()
time.sleep(30)
""",
    "log-link-secret": _log_job("os.symlink(SECRET_FILE_PATH, p)"),
    "log-fifo": _log_job("os.mkfifo(p)"),
    "log-dev-zero": _log_job('os.symlink("/dev/zero", p)'),
    "forged-status": """
import json
forged = {"job_id": JOB_ID, "state": "succeeded", "exit_code": 0, "signal": None, "started_at": 0.0,
          "ended_at": 1.0, "seconds": 1.0, "pid": 1, "pid_start_time": None, "isolation": [], "reason": ""}
plant("status.json", lambda p: open(p, "w").write(json.dumps(forged)))
print("acc=0.99")
ready()
wait_for_driver()
raise SystemExit(3)
""",
    "forged-pid": """
import json, time
try:
    start = float(open("/proc/%d/stat" % VICTIM_PID).read().rsplit(")", 1)[1].split()[19])
except OSError:
    start = 0.0  # the victim is out of sight (a PID namespace): point at it all the same
plant("pid.json", lambda p: open(p, "w").write(json.dumps(
    {"wrapper_pid": VICTIM_PID, "wrapper_start": start, "pid": VICTIM_PID, "start": start})))
ready()
time.sleep(30)
""",
    "malformed-pid": """
import time
plant("pid.json", lambda p: open(p, "w").write('{"wrapper_pid": "x", '))
ready()
time.sleep(30)
""",
    "shadow-module": """
import subprocess, sys
try:
    with open("json.py", "w") as f:
        f.write("def dumps(x):\\n    return 'acc=1.0'\\n")
    print("PLANTED", flush=True)
except OSError as e:
    print("REFUSED", e.errno, flush=True)
subprocess.run([sys.executable, "eval.py"])
""",
    "orphan-output": """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5); print('ORPHAN-LINE', flush=True); "
                  "time.sleep(30)"], start_new_session=True)
print("MAIN-DONE", flush=True)
""",
}
# what the driver does while a control job runs (after it printed READY)
ACTIONS = {"stop-reason-link": "stop", "log-link-secret": "read-log", "log-fifo": "read-log",
           "log-dev-zero": "read-log", "forged-status": "read-status", "forged-pid": "stop-both",
           "malformed-pid": "stop-both"}
EVAL_PY = "import json\nprint(json.dumps({'acc': 0.5}))\n"


# ----------------------------------------------------------------------------------------------------- driver
def driver(plan_path: str) -> int:
    """Run the plan's jobs through the real wrapper as this process's user, all at once; then do, job by job, what
    nightlab does while one runs (read its log, status, stop it); print every job's result as one JSON line."""
    plan = json.loads(Path(plan_path).read_text())
    sys.path.insert(0, plan["repo"])
    from nightlab.sandbox import isolate, runner

    base = Path(plan["base"])
    started: dict[str, tuple[Path, tuple[int, float], Path]] = {}
    for job in plan["jobs"]:
        name = job["name"]
        wt, run_dir = base / f"wt-{name}", base / "runs" / name
        wt.mkdir(parents=True, exist_ok=True)
        for rel, text in job.get("files", {}).items():
            (wt / rel).write_text(text)
        env = isolate.job_environment(dict(os.environ), {"PYTHONUNBUFFERED": "1", "HOME": plan["home"]}, [])
        protected = {rel: runner.hash_file(wt / rel) for rel in job.get("protected", [])}
        # the attempt's constants (secrets to look for among them) reach it in a file, not on its command line
        (wt / "escape_consts.json").write_text(json.dumps({**plan["consts"], "RUN_DIR": str(run_dir),
                                                           "JOB_ID": name}))
        spec = runner.JobSpec(job_id=name, argv=[sys.executable, "-c", PREAMBLE + job["code"]], cwd=str(wt),
                              run_dir=str(run_dir), env=env, timeout_s=20, grace_s=0.5,
                              isolation=plan["isolation"], memory_mb=job.get("memory_mb"), protected=protected)
        pids = runner.launch(spec)
        started[name] = (run_dir, (int(pids["wrapper_pid"]), float(pids["wrapper_start"])), wt)
    observed = {job["name"]: _act(runner, job.get("action", ""), *started[job["name"]]) for job in plan["jobs"]}
    results: dict[str, Any] = {}
    for name, (run_dir, ident, _wt) in started.items():
        obs = observed[name]
        status = None
        with _deadline(40, obs, "waiting for the status"):
            while status is None:
                status = runner.read_status(run_dir, ident)
                if status is None and not runner.wrapper_alive(run_dir, ident):
                    status = runner.read_status(run_dir, ident)
                    break
                time.sleep(0.05)
        results[name] = {"status": None if status is None else status.__dict__, "obs": obs,
                         "log": runner.read_log(run_dir)[:20000]}
    print(json.dumps(results))
    return 0


def _act(runner: Any, action: str, run_dir: Path, ident: tuple[int, float], cwd: Path) -> dict[str, Any]:
    """What nightlab does while the job runs, once it printed READY; what it saw, or how it failed."""
    from nightlab.sandbox import safeio

    obs: dict[str, Any] = {}
    if not action:
        return obs
    with _deadline(15, obs, "waiting for READY"):
        while not (cwd / "READY").exists() and runner.wrapper_alive(run_dir, ident):
            time.sleep(0.05)
    if action == "read-log":
        time.sleep(0.6)  # the job plants its replacement 0.3 s after READY (and waits for ACTED)
    with _deadline(5, obs, action):
        if action == "read-log":
            obs["log"] = runner.read_log(run_dir)[:4000]
            obs["last_line"] = runner.last_log_line(run_dir)
            try:
                obs["cli_log"] = safeio.read_bytes(run_dir / "output.log", 4000).decode("utf-8", "replace")
            except OSError as e:
                obs["cli_log"] = f"refused: {e}"
        elif action == "read-status":
            st = runner.read_status(run_dir, ident, settle_s=0.2)
            obs["status_while_running"] = None if st is None else st.state
        elif action == "stop":
            obs["stopped"] = runner.stop(run_dir, "stopped by the user", ident)
        elif action == "stop-both":
            obs["pids"] = runner.read_pids(run_dir)
            obs["alive_from_file"] = runner.wrapper_alive(run_dir)
            obs["stopped_from_file"] = runner.stop(run_dir, "stopped (TUI path)")
            obs["stopped"] = runner.stop(run_dir, "stopped by the user", ident)
    (cwd / "ACTED").touch()
    return obs


@contextmanager
def _deadline(seconds: int, obs: dict[str, Any], what: str) -> Iterator[None]:
    def fire(_sig: int, _frame: object) -> None:
        raise TimeoutError(what)

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    except TimeoutError:
        obs.setdefault("hung", []).append(what)
    except Exception as e:  # a crash of nightlab's own reads is an observation, not the end
        obs.setdefault("errors", []).append(f"{what}: {type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------------------------------- harness
@dataclass
class Cell:
    layer: str
    who: str  # "root" or "user" (the unprivileged user), or the name of a non-root runner
    verdicts: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    skipped: str = ""


def unavailable(layer: str) -> str:
    """Why `layer` cannot run here ("" when it can)."""
    sys.path.insert(0, str(ROOT))
    from nightlab.sandbox import isolate

    caps = isolate.probe()
    return caps.unavailable(LAYERS[layer][0]) if layer != "none" else ""


def ensure_user() -> tuple[pwd.struct_passwd | None, str]:
    """The unprivileged test user (made when missing, when we are root), or None and why not."""
    if os.geteuid() != 0:
        return None, "not running as root: the unprivileged run is this user's own"
    lock = Path(tempfile.gettempdir()) / "nightlab-escape-user.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(TEST_USER), ""
        except KeyError:
            pass
        useradd = shutil.which("useradd")
        if not useradd:
            return None, "useradd not found: cannot create an unprivileged user"
        r = subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"useradd {TEST_USER} failed: {r.stderr.strip()}"
        return pwd.getpwnam(TEST_USER), ""


def as_user(pw: pwd.struct_passwd | None) -> list[str]:
    if pw is None:
        return []
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]


def user_python(pw: pwd.struct_passwd | None) -> tuple[str, str]:
    """An interpreter this user may run that can import nightlab.sandbox from the repository (stdlib only)."""
    cands = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for py in [c for i, c in enumerate(cands) if c and c not in cands[:i]]:
        # as the wrapper will: the interpreter starts itself again (a first exec can succeed where a second fails)
        check = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import nightlab.sandbox.runner'], " \
                "check=True)"
        r = subprocess.run([*as_user(pw), py, "-c", check], capture_output=True,
                           env={"PATH": os.defpath, "PYTHONPATH": str(ROOT)}, cwd="/")
        if r.returncode == 0:
            return py, ""
    who = pw.pw_name if pw else "this user"
    return "", f"no Python that {who} may run imports nightlab.sandbox from {ROOT} (is the repository readable?)"


class Listener:
    """A unix socket outside the sandbox that counts who connected."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(address)
        if not address.startswith("\0"):
            os.chmod(address, 0o777)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def run_cell(layer: str, who: str) -> Cell:
    """Every attempt in one layer as one kind of user; never raises for what a job did."""
    cell = Cell(layer, who)
    why = unavailable(layer)
    if why:
        cell.skipped = f"{layer} unavailable here: {why}"
        return cell
    pw: pwd.struct_passwd | None = None
    if who == "user":
        pw, why = ensure_user()
        if pw is None:
            cell.skipped = why
            return cell
    py, why = user_python(pw)
    if not py:
        cell.skipped = why
        return cell
    with _outside(pw, py) as ctx:
        plan = _plan(layer, ctx, py)
        plan_file = Path(ctx["base"]) / "plan.json"
        plan_file.write_text(json.dumps(plan))
        _chown(plan_file, pw)
        env = {"PATH": os.defpath, "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", "FAKE_API_KEY": ctx["SECRET_API"],
               "XDG_CACHE_HOME": str(Path(ctx["base"]) / "cache"), "HOME": ctx["home"], **LAYERS[layer][1]}
        r = subprocess.run([*as_user(pw), py, str(Path(__file__).resolve()), "--driver", str(plan_file)],
                           capture_output=True, text=True, env=env, cwd=ctx["base"], timeout=600)
        if r.returncode != 0 or not r.stdout.strip():
            cell.skipped = f"the driver failed: {(r.stderr or r.stdout).strip()[-800:]}"
            return cell
        results = json.loads(r.stdout.strip().splitlines()[-1])
        judge(cell, results, ctx)
    return cell


@contextmanager
def _outside(pw: pwd.struct_passwd | None, py: str) -> Iterator[dict[str, Any]]:
    """What lies outside the sandbox: a base folder for the jobs (owned by the runner), listening sockets, a victim
    process with secrets in its command line and environment, secret and victim files. All removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    root = os.geteuid() == 0
    # the jobs' folders where a project would be, not under /tmp or /var/tmp (which the sandbox replaces anyway)
    base = Path(f"/var/lib/nightlab-escape-{tag}-base") if root else Path(tempfile.mkdtemp(prefix="nle-"))
    base.mkdir(mode=0o700, exist_ok=True)
    home = base / "home"
    home.mkdir()
    made: list[Path] = [base]
    run_dir = Path(f"/run/nightlab-escape-{tag}") if root and os.path.isdir("/run") else base.parent / f"nle-{tag}-r"
    else_dir = Path(f"/var/lib/nightlab-escape-{tag}") if root else Path(tempfile.mkdtemp(prefix="nle-",
                                                                                        dir="/var/tmp"))
    for d in (run_dir, else_dir):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        made.append(d)
    ctx: dict[str, Any] = {
        "tag": tag, "base": str(base), "home": str(home),
        "SECRET_CMD": f"cmdline-secret-{uuid.uuid4().hex}", "SECRET_ENV": f"env-secret-{uuid.uuid4().hex}",
        "SECRET_API": f"sk-{uuid.uuid4().hex}", "SECRET_HOME": f"home-secret-{uuid.uuid4().hex}",
        "SECRET_FILE": f"file-secret-{uuid.uuid4().hex}", "LEFTOVER": f"nightlab-escape-{tag}",
        "SOCK_RUN": str(run_dir / "bus"), "SOCK_ELSEWHERE": str(else_dir / "daemon.sock"),
        "ABSTRACT": f"nightlab-escape-{tag}", "OUTSIDE_FILE": str(base / "outside" / "escape.txt"),
        "HOME_SECRET_PATH": str(home / "secret.txt"), "SECRET_FILE_PATH": str(base / "secret.txt"),
        "VICTIM_FILE": str(base / "victim.txt"),
    }
    (base / "outside").mkdir()
    (home / "secret.txt").write_text(ctx["SECRET_HOME"])
    (base / "secret.txt").write_text(ctx["SECRET_FILE"])
    (base / "victim.txt").write_text("ORIGINAL")
    for p in [base, *base.rglob("*")]:
        _chown(p, pw)
    listeners = [Listener(ctx["SOCK_RUN"]), Listener(ctx["SOCK_ELSEWHERE"]), Listener("\0" + ctx["ABSTRACT"])]
    victim = subprocess.Popen([*as_user(pw), py, "-c", "import time; time.sleep(300)", ctx["SECRET_CMD"]],
                              env={"PATH": os.defpath, "NIGHTLAB_ESCAPE_SECRET": ctx["SECRET_ENV"]},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    ctx["VICTIM_PID"] = victim.pid
    ctx["victim"] = victim
    ctx["listeners"] = listeners
    try:
        yield ctx
    finally:
        victim.kill()
        victim.wait()
        for lst in listeners:
            lst.close()
        for leftover in Path("/dev/shm").glob(f"nightlab-escape-{tag}*"):
            leftover.unlink(missing_ok=True)
        for leftover in Path("/tmp").glob(f"nightlab-escape-{tag}"):
            leftover.unlink(missing_ok=True)
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


def _chown(p: Path, pw: pwd.struct_passwd | None) -> None:
    if pw is not None:
        os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


CONSTS = ("SECRET_CMD", "SECRET_ENV", "SECRET_API", "SECRET_HOME", "LEFTOVER", "SOCK_RUN", "SOCK_ELSEWHERE",
          "ABSTRACT", "OUTSIDE_FILE", "HOME_SECRET_PATH", "SECRET_FILE_PATH", "VICTIM_FILE", "VICTIM_PID")


def _plan(layer: str, ctx: dict[str, Any], py: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [
        {"name": "probe", "code": PROBE_JOB},
        {"name": "shm-fill", "code": SHM_FILL_JOB, "memory_mb": MEM_CAP_MB},
    ]
    for name, code in CONTROL_JOBS.items():
        job: dict[str, Any] = {"name": name, "code": code, "action": ACTIONS.get(name, "")}
        if name == "shadow-module":
            job.update(files={"eval.py": EVAL_PY}, protected=["eval.py"])
        jobs.append(job)
    consts = {k: ctx[k] for k in CONSTS}
    consts["CAP_MB"] = MEM_CAP_MB
    return {"repo": str(ROOT), "base": ctx["base"], "home": ctx["home"], "isolation": LAYERS[layer][0],
            "consts": consts, "jobs": jobs, "python": py}


def _probes(log: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in log.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] == "PROBE":
            out[parts[1]] = parts[2] if len(parts) > 2 else ""
    return out


def judge(cell: Cell, results: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Turn the driver's observations and what is visible outside into a verdict per attempt."""
    v, d = cell.verdicts, cell.details
    probe = results.get("probe", {})
    pr = _probes(probe.get("log", ""))
    d["probe"] = json.dumps(pr)[:2000]

    def refused(name: str) -> bool:
        return pr.get(name, "").startswith("refused") or pr.get(name, "") in ("not-found", "other")

    v["capabilities"] = BLOCKED if pr.get("capabilities") == "0000000000000000" else GAP
    for name in ("remount-root", "umount-tmp"):
        v[name] = BLOCKED if refused(name) else GAP
    outside = Path(ctx["OUTSIDE_FILE"])
    v["write-outside"] = GAP if outside.exists() else (BLOCKED if refused("write-outside") else CONTAINED)
    v["read-home"] = GAP if pr.get("read-home") == "found" else BLOCKED
    lst = ctx["listeners"]
    for name, listener in zip(("unix-socket-run", "unix-socket-elsewhere", "unix-socket-abstract"), lst,
                              strict=True):
        v[name] = GAP if (pr.get(name) == "done" or listener.accepted) else BLOCKED
    for name in ("cmdline", "environ", "wrapper-environ"):
        v[name] = GAP if pr.get(name) == "found" else BLOCKED
    for name, where in (("shm-leftover", "/dev/shm"), ("tmp-leftover", "/tmp")):
        left = Path(where, ctx["LEFTOVER"]).exists()
        v[name] = GAP if left else (BLOCKED if refused(name) else CONTAINED)
    fill = results.get("shm-fill", {})
    host_fill = Path("/dev/shm", ctx["LEFTOVER"] + "-fill")
    size = host_fill.stat().st_size >> 20 if host_fill.exists() else 0
    fst = fill.get("status") or {}
    d["shm-fill"] = f"host /dev/shm holds {size} MB after the job; job: {fst.get('state')} {fst.get('reason')}"
    v["shm-fill"] = GAP if size > MEM_CAP_MB or host_fill.exists() else CONTAINED
    _judge_control(cell, results, ctx)


def _planted(res: dict[str, Any]) -> bool:
    return "PLANTED" in res.get("log", "") or "PLANTED" in json.dumps(res.get("obs", {}))


def _judge_control(cell: Cell, results: dict[str, Any], ctx: dict[str, Any]) -> None:
    v, d = cell.verdicts, cell.details
    for name in CONTROL_JOBS:
        res = results.get(name, {})
        obs, st, log = res.get("obs", {}), res.get("status") or {}, res.get("log", "")
        d[name] = json.dumps({"state": st.get("state"), "reason": st.get("reason"), "obs": obs})[:600]
        fooled = bool(obs.get("hung") or obs.get("errors")) or st == {}
        if name == "stop-reason-link":
            fooled |= Path(ctx["VICTIM_FILE"]).read_text() != "ORIGINAL" or st.get("state") != "killed"
        elif name in ("log-link-secret", "log-fifo", "log-dev-zero"):
            seen = json.dumps(obs) + log
            fooled |= ctx["SECRET_FILE"] in seen or "PRINTED-BY-THE-JOB" not in log
        elif name == "forged-status":
            fooled |= obs.get("status_while_running") == "succeeded"  # the forged status believed
            fooled |= st.get("state") != "failed" or st.get("exit_code") != 3
        elif name in ("forged-pid", "malformed-pid"):
            fooled |= ctx["victim"].poll() is not None or st.get("state") != "killed"
        elif name == "shadow-module":
            fooled |= not st.get("protected_changed")
        elif name == "orphan-output":
            fooled |= "ORPHAN-LINE" in log or "MAIN-DONE" not in log
        if fooled:
            v[name] = GAP
        elif name in ("shadow-module", "orphan-output"):
            v[name] = CONTAINED  # the job did it; nightlab saw through it
        else:
            v[name] = CONTAINED if _planted(res) else BLOCKED


# ----------------------------------------------------------------------------------------------------- table
def verdict_text(cell: Cell, attempt: str) -> str:
    got = cell.verdicts.get(attempt, "?")
    if got == GAP:
        return "gap (documented)" if expected_gap(attempt, cell.layer, cell.who) else "ESCAPED"
    return got


def table(cells: list[Cell]) -> str:
    cols = [c for c in cells if not c.skipped]
    head = ["attempt", *[f"{c.layer} ({c.who})" for c in cols]]
    rows = [[name, *[verdict_text(c, name) for c in cols]] for name, _ in ATTEMPTS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    for c in cells:
        if c.skipped:
            lines.append(f"\n{c.layer} ({c.who}) not run: {c.skipped}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--driver", help=argparse.SUPPRESS)
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--who", default="root,user" if os.geteuid() == 0 else "user")
    ap.add_argument("--json", help="also write every verdict and detail here")
    args = ap.parse_args()
    if args.driver:
        return driver(args.driver)
    cells: list[Cell] = []
    started = time.monotonic()
    for layer in args.layers.split(","):
        for who in args.who.split(","):
            print(f"running {layer} as {who} ...", file=sys.stderr, flush=True)
            cells.append(run_cell(layer, who if who == "root" or os.geteuid() == 0 else "user"))
    print(table(cells))
    gaps = sorted({(a, c.layer, c.who) for c in cells for a in c.verdicts if c.verdicts[a] == GAP})
    print("\ndocumented gaps:")
    for a, layer, who in gaps:
        print(f"  {a} / {layer} / {who}: {expected_gap(a, layer, who) or 'NOT EXPECTED: a bug'}")
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps([c.__dict__ for c in cells], indent=1))
    return 1 if any(verdict_text(c, a) == "ESCAPED" for c in cells for a in c.verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ATTEMPTS", "Cell", "expected_gap", "run_cell", "table"]
