"""The torch half of nightlab's progress hook, loaded by `sitecustomize` only once `torch` has been imported.

It lives apart so that the Python processes of a job that never import torch do not pay for compiling it.
`install(core)` takes the running `sitecustomize` module, whose progress file it writes through, and installs:
- imports_done: a global parameter-registration hook (a model is being built) and a one-shot DataLoader.__init__
  (the script is past its imports);
- data_ready: a one-shot wrapper of the DataLoader iterator's __next__ (the first batch) and a one-shot global
  forward pre hook (the first forward of any module: data without a DataLoader);
- first_step, training and step reports: a global optimizer step post hook (torch >= 2.0), counting the first
  optimizer that steps; training is the 10th step or the first report one second later, whichever comes first;
- evaluating: the first `Module.eval()`, or the first module forward inside `no_grad` / `inference_mode`, after
  the first step (gradient clipping and EMA updates use no_grad too, but call no module).
The forward-based watches use global module hooks, which torch.compile warns about (on stderr, i.e. in the user's
log) and may recompile for; the first call of `torch.compile` (also through `Module.compile`) takes them out for
good, leaving the DataLoader, the optimizer hook and `Module.eval()`.
One-shot patches take themselves out once they have fired, so the steady-state cost per step is the optimizer hook,
a thin `Tensor.backward` wrapper that keeps a reference to the loss (read at most once per second; on CUDA through an
asynchronous copy, never waiting for the device) and, until the first evaluation, thin no_grad enter/exit wrappers:
a few microseconds (bench/instrument_overhead.py). Inside torch.compile tracing the hooks do nothing.
Every patch can be undone; an error disables the whole hook. Python 3.9+ syntax; nothing here raises into user code.
"""

from __future__ import annotations

import functools
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from types import ModuleType
    from typing import Any, ClassVar

REPORT_INTERVAL_S = 1.0
TRAINING_STEPS = 10
# a stage implies the ones it cannot happen without: say so rather than leave a gap
_IMPLIES = {
    "data_ready": ("imports_done",),
    "first_step": ("imports_done", "data_ready"),
    "training": ("imports_done", "data_ready"),
    "evaluating": ("imports_done", "data_ready"),
}
_monotonic = time.monotonic
_WINDOW_KEY = -424242  # our key in torch's global forward pre hook dict (torch's own keys count up from 0)


def _never() -> bool:
    return False


class _T:
    """What the torch half knows; class attributes, so the per-step path reads one object."""

    reached: ClassVar[set[str]] = {"started"}
    step = 0
    opt_id: int | None = None
    t_first = 0.0
    step_t = 0.0  # when the last counted step ended
    last_t = 0.0
    last_step = 0
    reported_step = 0
    next_report = float("inf")
    loss: Any = None
    pending: Any = None  # (cpu tensor, cuda event, step) of an asynchronous loss copy
    undo: ClassVar[dict[str, Any]] = {}  # patch name -> callable that takes it out
    is_compiling: Any = _never
    compiled = False  # torch.compile was called: no global module hooks from then on


# bound by install(): the sitecustomize's process state (fd, pid), its writer and its off switch
_P: Any = None
_write: Any = None
_disable: Any = None


# ------------------------------------------------------------------------------------------------ writing
def _fmt(v: Any) -> str:
    """A JSON value for the few types markers carry; json itself is imported only for awkward strings."""
    if v is None or v is True or v is False:
        return "null" if v is None else ("true" if v else "false")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else "null"
    s = str(v)
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    import json

    return json.dumps(s)


def _emit(stage: str, **fields: Any) -> None:
    _write(stage, "".join(f', "{k}": {_fmt(v)}' for k, v in fields.items()))


def _reach(stage: str, **fields: Any) -> bool:
    """Record a stage the first time it is reached. False if it was already reached (or the hook is off)."""
    if stage in _T.reached or _P.fd < 0:
        return False
    for earlier in _IMPLIES.get(stage, ()):
        if earlier not in _T.reached:
            _T.reached.add(earlier)
            _emit(earlier, inferred=True)
    _T.reached.add(stage)
    _emit(stage, **fields)
    return True


def _undo(*names: str) -> None:
    for name in names:
        undo = _T.undo.pop(name, None)
        if undo is not None:
            try:
                undo()
            except Exception:
                pass


def _undo_all() -> None:
    _undo(*list(_T.undo))


# ------------------------------------------------------------------------------------------------ stages
# Each stage takes out the patches that watch for it, also when it was already reached some other way (implied by a
# later stage), so that nothing but the per-step hooks stays in once training runs.
def _imports_done(via: str) -> None:
    _reach("imports_done", via=via)
    _undo("dataloader_init")
    # the parameter hook cannot take itself out while torch iterates the hook dict: it goes at the next stage


def _data_ready(via: str) -> None:
    _reach("data_ready", via=via)
    _undo("dataloader_next", "forward_pre", "dataloader_init", "param_registration")


def _evaluating(via: str) -> None:
    if _T.step:
        _reach("evaluating", via=via, step=_T.step)
        _undo("module_eval", "no_grad", "inference_mode", "eval_window")


def _on_step(opt: Any, args: Any, kwargs: Any) -> None:
    """Global optimizer step post hook: the only code of ours that runs on every step."""
    if _P.fd < 0 or _T.is_compiling():
        return
    try:
        if _T.opt_id != id(opt):
            if _T.opt_id is not None:
                return  # count one optimizer (a GAN steps two per iteration)
            _T.opt_id = id(opt)
        n = _T.step = _T.step + 1
        now = _T.step_t = _monotonic()
        if n == 1:
            _undo("param_registration", "dataloader_init", "dataloader_next", "forward_pre")
            _T.t_first = _T.last_t = now
            _T.last_step = _T.reported_step = 1
            _T.next_report = now + REPORT_INTERVAL_S
            _reach("first_step", step=1, **_loss_fields(1))
        elif now >= _T.next_report:
            _report(now)
        elif n == TRAINING_STEPS and "training" not in _T.reached:
            _reach("training", step=n, steps_per_s=_rate(n - 1, now - _T.t_first))
    except Exception:
        _disable()


def _rate(steps: int, seconds: float) -> float | None:
    return round(steps / seconds, 3) if seconds > 0 else None


def _report(now: float) -> None:
    n = _T.step
    fields: dict[str, Any] = {"step": n, "steps_per_s": _rate(n - _T.last_step, now - _T.last_t)}
    fields.update(_loss_fields(n))
    if "training" not in _T.reached:
        _reach("training", **fields)
    _emit("step", **fields)
    _T.last_t, _T.last_step, _T.reported_step = now, n, n
    _T.next_report = now + REPORT_INTERVAL_S


def _final_step() -> None:
    """At exit: one last step report if steps were made since the last one (a short run has no periodic report).
    Written at exit, it says how long ago the last step was (`idle_s`: a final evaluation, saving), so the time the
    training ended can be told from the time the process did."""
    if _T.step > _T.reported_step:
        fields: dict[str, Any] = {"step": _T.step, "steps_per_s": _rate(_T.step - 1, _T.step_t - _T.t_first),
                                  "idle_s": round(max(0.0, _monotonic() - _T.step_t), 3)}
        fields.update(_loss_fields(_T.step))
        _emit("step", **fields)


def _loss_fields(step: int) -> dict[str, Any]:
    """The last loss passed to `backward`, as {"loss": x}. On CUDA it never waits for the device: it starts an
    asynchronous copy and reports it (with "loss_step") at a later report, once its event says it has landed."""
    loss = _T.loss
    out: dict[str, Any] = {}
    try:
        pending = _T.pending
        if pending is not None and pending[1].query():
            out = {"loss": float(pending[0]), "loss_step": pending[2]}
            _T.pending = None
        if loss is None or loss.numel() != 1:
            return out
        kind = loss.device.type
        if kind == "cpu":
            return {"loss": float(loss.item())}
        if kind == "cuda" and _T.pending is None:
            import torch

            copy = loss.detach().to("cpu", non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            _T.pending = (copy, event, step)
    except Exception:
        _T.loss = None
    return out


# ------------------------------------------------------------------------------------------------ install
def install(core: ModuleType) -> None:
    """Bind to the running sitecustomize and install the hooks. Each patch is independent: one that fails (an older
    or newer torch) is skipped, and whatever part of it went in comes back out."""
    global _P, _write, _disable
    _P, _write, _disable = core._Proc, core.write, core.disable
    torch = sys.modules.get("torch")
    if torch is None or _P.fd < 0:
        return
    _P.on_exit = _final_step
    _P.on_disable = _undo_all
    _T.is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None) or _never

    def guarded(install: Any, *names: str) -> None:
        try:
            install()
        except Exception:
            _undo(*names)

    def swap(name: str, owner: Any, attr: str, make: Any) -> None:
        """Replace owner.attr by make(original) and remember how to put the original back."""
        original = owner.__dict__[attr]
        replacement = functools.wraps(original)(make(original))
        setattr(owner, attr, replacement)

        def undo() -> None:
            if owner.__dict__.get(attr) is replacement:
                setattr(owner, attr, original)

        _T.undo[name] = _chain(_T.undo.get(name), undo)

    def handle(name: str, h: Any) -> None:
        _T.undo[name] = h.remove

    def optimizer() -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        handle("optimizer", register_optimizer_step_post_hook(_on_step))

    def backward() -> None:
        def make(orig: Any) -> Any:
            def backward(self: Any, *args: Any, **kwargs: Any) -> Any:
                _T.loss = self
                return orig(self, *args, **kwargs)

            return backward

        swap("backward", torch.Tensor, "backward", make)

    def param_registration() -> None:
        from torch.nn.modules.module import register_module_parameter_registration_hook

        def hook(module: Any, name: str, param: Any) -> None:
            _imports_done("model")

        handle("param_registration", register_module_parameter_registration_hook(hook))

    def dataloader() -> None:
        from torch.utils.data import dataloader as dl

        def make_init(orig: Any) -> Any:
            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                _imports_done("dataloader")
                orig(self, *args, **kwargs)

            return __init__

        def make_next(orig: Any) -> Any:
            def __next__(self: Any) -> Any:
                batch = orig(self)
                _data_ready("dataloader")
                return batch

            return __next__

        swap("dataloader_init", dl.DataLoader, "__init__", make_init)
        swap("dataloader_next", dl._BaseDataLoaderIter, "__next__", make_next)

    def forward_pre() -> None:
        from torch.nn.modules.module import register_module_forward_pre_hook

        def hook(module: Any, args: Any) -> None:
            _data_ready("forward")

        # torch iterates a copy of the global forward hooks, so this one may take itself out; until it does, module
        # calls take torch's slower hook path, but only before the first forward
        handle("forward_pre", register_module_forward_pre_hook(hook))

    def module_eval() -> None:
        def make(orig: Any) -> Any:
            def eval(self: Any) -> Any:
                if _T.step:
                    _evaluating("eval")
                return orig(self)

            return eval

        swap("module_eval", torch.nn.Module, "eval", make)

    def compile_watch() -> None:
        # torch.compile warns about (and may recompile for) global module hooks: from the first compile on, use none
        def make(orig: Any) -> Any:
            def compile(*args: Any, **kwargs: Any) -> Any:
                _T.compiled = True
                _undo("forward_pre", "eval_window", "no_grad", "inference_mode", "compile")
                return orig(*args, **kwargs)

            return compile

        swap("compile", torch, "compile", make)

    def grad_modes() -> None:
        from torch.nn.modules import module as nn_module

        def window_hook(module: Any, args: Any) -> None:
            _evaluating("no_grad_forward")

        # opening and closing the window happens on every no_grad block after the first step (gradient clipping
        # opens several per step), so it writes torch's global hook dict directly, as register_module_forward_pre_hook
        # does, instead of paying for a RemovableHandle each time (about 0.1 instead of 0.8 us)
        hooks = nn_module._global_forward_pre_hooks
        if not isinstance(hooks, dict):
            raise TypeError("unknown torch: no global forward pre hook dict")

        def close() -> None:
            hooks.pop(_WINDOW_KEY, None)

        def make_enter(orig: Any) -> Any:
            def __enter__(self: Any) -> Any:
                result = orig(self)
                # after the first step, watch for a module forward until the block exits
                if _T.step and "eval_window" not in _T.undo and _P.fd >= 0 and not _T.compiled:
                    hooks[_WINDOW_KEY] = window_hook
                    _T.undo["eval_window"] = close
                return result

            return __enter__

        def make_exit(orig: Any) -> Any:
            def __exit__(self: Any, *exc: Any) -> Any:
                if "eval_window" in _T.undo:
                    _undo("eval_window")
                return orig(self, *exc)

            return __exit__

        for name, cls in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
            swap(name, cls, "__enter__", make_enter)
            swap(name, cls, "__exit__", make_exit)

    guarded(optimizer, "optimizer")
    guarded(backward, "backward")
    guarded(param_registration, "param_registration")
    guarded(dataloader, "dataloader_init", "dataloader_next")
    guarded(forward_pre, "forward_pre")
    guarded(module_eval, "module_eval")
    guarded(grad_modes, "no_grad", "inference_mode")
    guarded(compile_watch, "compile")


def _chain(first: Any, second: Any) -> Any:
    """Two undo callables as one (a patch made of two swaps), the later undone first."""
    if first is None:
        return second

    def both() -> None:
        second()
        first()

    return both
