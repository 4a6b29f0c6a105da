"""nightlab's progress hook: reports how far a training job got, without editing the user's code.

The runner prepends this file's folder to the job's PYTHONPATH, so every Python process of the job imports it as
`sitecustomize` at start-up. It is active only when NIGHTLAB_JOB_PROGRESS names the progress file
(`<run dir>/progress.jsonl`); either way it then runs the `sitecustomize` it shadows, as Python would have.

Why a side channel and not stdout: the job's output is the user's log and the metric contract parses it; the hook
must never change a byte of it. Markers are JSON lines appended to the progress file with one write(2) each:

    {"t": 1718000000.123, "stage": "first_step", "pid": 4242, "step": 1, "loss": 2.31}

Stages, in order: started < imports_done < data_ready < first_step < training < evaluating < metric_reported <
clean_exit; plus `step` (step, loss when visible, steps/s: at most once per second, and once at exit with
`idle_s`, how long before it the last step was) and `error`
(an uncaught exception's type). `metric_reported` is never written here: the agent finds it in the log, so printing
is not watched and stays exactly as fast as without the hook.

This file is the process half, kept small because every Python process of a job compiles it when bytecode cannot
be cached (PYTHONDONTWRITEBYTECODE, a read-only install, another Python version): `started`, `error` and
`clean_exit` (atexit in the job's first Python process, unless an uncaught exception or a non-zero `sys.exit`), and a
meta path finder that waits for `import torch`. Only then is the torch half (`_nightlab_torch_hook.py`, next to
this file) loaded; it observes the training stages. A process that never imports torch pays for nothing more.

Python 3.9+ syntax, standard library only, nothing heavy imported at start-up (no json, re or typing), and nothing
ever raises into user code: an error inside the hook disables it.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only; typing is not imported at run time
    from typing import Any

STAGES = (
    "started",
    "imports_done",
    "data_ready",
    "first_step",
    "training",
    "evaluating",
    "metric_reported",
    "clean_exit",
)
ENV_PROGRESS = "NIGHTLAB_JOB_PROGRESS"
ENV_ROOT = "NIGHTLAB_JOB_PROGRESS_ROOT"  # set by the job's first hooked process so its children know they are not it
TORCH_HOOK = "_nightlab_torch_hook"  # the torch half, a file next to this one
CORE_MODULE = "_nightlab_sitecustomize"  # this module, under a name the chained sitecustomize cannot take


class _Proc:
    """The process half's state, shared with the torch half (which hangs its callbacks here)."""

    fd = -1
    pid = 0
    root = False
    exit_status: Any = None
    on_exit: Any = None  # torch half: the last step report
    on_disable: Any = None  # torch half: take every patch back out


def write(stage: str, extra: str = "") -> None:
    """Append one marker line (`extra` is ', "key": value' JSON text) with a single write(2): atomic for lines this
    small even with several processes appending, nothing buffered, never raises."""
    if _Proc.fd < 0:
        return
    try:
        line = f'{{"t": {time.time():.3f}, "stage": "{stage}", "pid": {_Proc.pid}{extra}}}\n'
        os.write(_Proc.fd, line.encode())
    except Exception:
        disable()


def disable() -> None:
    """Stop writing and take every patch back out: a broken hook must degrade to no hook."""
    fd, _Proc.fd = _Proc.fd, -1
    if _Proc.on_disable is not None:
        try:
            _Proc.on_disable()
        except Exception:
            pass
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


class _TorchWatcher:
    """A meta path finder that waits for `import torch`, lets the real finder load it, then loads the torch half.

    It answers None for every other name (one comparison per import) and leaves sys.meta_path at the first torch.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        try:
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if find is not None:
                    spec = find(name, path, target)
                    if spec is not None:
                        break
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            real_exec = loader.exec_module

            def exec_module(module: Any) -> None:
                real_exec(module)  # torch's own errors propagate exactly as without us
                try:
                    del loader.exec_module  # back to the class's method
                except AttributeError:
                    pass
                _load_torch_hook()

            loader.exec_module = exec_module
            return spec
        except Exception:
            return None  # the normal machinery finds torch; it simply goes unobserved


def _load_torch_hook() -> None:
    """Load the torch half from its file next to this one (by path: the user's code may have changed sys.path)."""
    if _Proc.fd < 0:
        return
    try:
        import importlib.util

        here = os.path.dirname(os.path.realpath(__file__))
        spec = importlib.util.spec_from_file_location(TORCH_HOOK, os.path.join(here, TORCH_HOOK + ".py"))
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[TORCH_HOOK] = module
        spec.loader.exec_module(module)
        module.install(sys.modules[CORE_MODULE])
    except Exception:
        disable()


def _at_exit() -> None:
    """The last atexit handler (registered first): final step report, the uncaught exception if any, clean_exit."""
    if _Proc.fd < 0 or os.getpid() != _Proc.pid:
        return
    try:
        if _Proc.on_exit is not None:
            _Proc.on_exit()
        # an uncaught exception leaves sys.last_value set before atexit runs (SystemExit does not)
        error = getattr(sys, "last_value", None)
        if error is not None:
            import json

            exc, msg = json.dumps(type(error).__name__), json.dumps(str(error)[:300])
            write("error", f', "exc": {exc}, "msg": {msg}')
        if _Proc.root and error is None and _Proc.exit_status in (None, 0):
            write("clean_exit")
    except Exception:
        pass
    finally:
        fd, _Proc.fd = _Proc.fd, -1
        try:
            os.close(fd)
        except OSError:
            pass


def _after_fork_in_child() -> None:
    _Proc.pid = os.getpid()
    _Proc.root = False


def _activate(path: str) -> None:
    try:
        _Proc.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        _Proc.pid = os.getpid()
        if not os.environ.get(ENV_ROOT):
            os.environ[ENV_ROOT] = str(_Proc.pid)
            _Proc.root = True
        root = "true" if _Proc.root else "false"
        write("started", f', "ppid": {os.getppid()}, "root": {root}, "python": "{sys.version_info[0]}.'
                         f'{sys.version_info[1]}"')
        import atexit

        atexit.register(_at_exit)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        original_exit = sys.exit

        def exit(status: Any = None) -> None:
            _Proc.exit_status = status
            original_exit(status)

        exit.__doc__ = original_exit.__doc__
        sys.exit = exit  # type: ignore[assignment]
        if "torch" in sys.modules:
            _load_torch_hook()
        else:
            sys.meta_path.insert(0, _TorchWatcher())
    except Exception:
        disable()


def _chain_next_sitecustomize() -> None:
    """Run the sitecustomize this one shadows (the first one on sys.path after our folder), as Python would have."""
    from importlib.machinery import PathFinder

    me = os.path.realpath(__file__)
    here = os.path.dirname(os.path.abspath(__file__))
    # string comparison first (cheap: no file system calls); a second spelling of our folder is caught below
    paths = [p for p in sys.path if not isinstance(p, str) or os.path.abspath(p or ".") != here]
    for _ in range(len(paths) + 1):
        spec = PathFinder.find_spec("sitecustomize", paths)
        if spec is None or spec.loader is None or not spec.origin:
            return
        if os.path.realpath(spec.origin) != me:
            break
        found = os.path.dirname(os.path.realpath(spec.origin))
        paths = [p for p in paths if not isinstance(p, str) or os.path.realpath(p or ".") != found]
    else:
        return
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # `import sitecustomize` now answers the user's module, as without us
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":
    sys.modules[CORE_MODULE] = sys.modules[__name__]  # ours stays reachable after chaining
    _progress = os.environ.get(ENV_PROGRESS)
    if _progress:
        _activate(_progress)
    _chain_next_sitecustomize()  # errors in the other sitecustomize surface exactly as they would without us
