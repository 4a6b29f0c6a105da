"""Failure classes and learning-curve pathologies, read from a job's log.

Two questions come after every run, and both must be answered without a language model (the builtin policy works
offline) and fast (the engine asks between two jobs):

- *Why did it fail?* `classify_failure` turns a log, an exit code and the runner's end state into one class from
  FAILURE_CLASSES plus the specifics a fix needs (the innermost frame in the user's code, the two shapes of a
  mismatch, the missing module). The class drives the policy's fix and the reward's partial credit; the summary is
  the one line a human reads in the experiment table.
- *How did it learn?* `curve_pathologies` reads the training-loss curve (and optionally a validation curve) for the
  usual pathologies -- diverging, NaN, plateau, over- and under-fitting, noise, too slow -- each with a one-line
  piece of evidence quoting the numbers, so a rationale can cite them.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent.goal import Goal
from nightlab.agent.metrics import parse_loss_curve
from nightlab.agent.states import FailureClass
from nightlab.sandbox.spec import JobEnd

__all__ = [
    "FAILURE_CLASSES", "Failure", "ParsedTraceback", "Pathology", "TracebackFrame", "classify_failure",
    "curve_pathologies", "parse_traceback",
]

# the classes a run's log and status can show (states.FailureClass, less the engine's own launch_error)
FAILURE_CLASSES = tuple(c for c in FailureClass if c != FailureClass.LAUNCH_ERROR)

_TRACEBACK_LINES = 60  # what Failure.traceback keeps of a long traceback
_TAIL_CHARS = 400_000  # the part of a huge log that text signals are looked for in (failures show at the end)


@dataclass
class Failure:
    """Why a run failed: a class for the policy, one line for humans, and the parsed specifics."""

    cls: FailureClass
    summary: str
    exception: str | None = None
    message: str | None = None
    file: str | None = None
    line: int | None = None
    traceback: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pathology:
    """One learning-curve problem and the numbers that show it."""

    kind: str  # diverging | nan | plateau | overfitting | underfitting | noisy | too_slow | still_improving
    evidence: str


# --- tracebacks -------------------------------------------------------------------------------------------------


@dataclass
class TracebackFrame:
    """One `File "...", line N, in func` entry, with the code line under it when printed."""

    file: str
    line: int
    func: str | None
    code: str | None


@dataclass
class ParsedTraceback:
    """The last traceback of a log, parsed: frames outermost first, then the exception."""

    frames: list[TracebackFrame]
    exc_type: str | None  # as printed, possibly dotted: torch.OutOfMemoryError
    message: str  # the first line of the message
    full_message: str  # every line of the message (torch and sklearn messages run over several lines)
    text: str  # the traceback as printed


_TB_HEADER = "Traceback (most recent call last):"
_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?\s*$')
_EXC_LINE_RE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::[ \t]?(?P<msg>.*))?$")
_RANK_PREFIX_RE = re.compile(r"^\[(?:rank|default)\d*\]:\s?")
_SYNTAX_TYPES = ("SyntaxError", "IndentationError", "TabError")


# torch.compile's own failures (torch._dynamo.exc), whose names do not end in Error
_COMPILE_EXCEPTIONS = ("BackendCompilerFailed", "InvalidCxxCompiler", "Unsupported")
_COMPILE_WORDS = ("no working c++ compiler", "cannot find a working triton installation",
                  "dynamo is not supported on python")
COMPILE_HINT = "run without it (compile = False, or drop torch.compile(...)), or install a C++ compiler (and triton)"


def _is_exception_name(name: str) -> bool:
    short = name.rsplit(".", 1)[-1]
    if short in ("Error", "Warning"):
        return False
    return short.endswith(("Error", "Exception", "Interrupt", "Exit", "Iteration", "Warning")) or short in (
        "KeyboardInterrupt", "StopIteration", "GeneratorExit", "Exception", "BaseException", *_COMPILE_EXCEPTIONS)


def _clean_lines(text: str) -> list[str]:
    """Log lines with distributed-launcher prefixes (`[rank0]: `) removed, so their tracebacks parse as usual."""
    lines = text.splitlines()
    if "]:" in text:
        lines = [_RANK_PREFIX_RE.sub("", ln) for ln in lines]
    return lines


def _read_exception(lines: list[str], i: int) -> tuple[str | None, str, str, int]:
    """The exception line at or after lines[i] (the first unindented line that names an exception), as
    (type, first message line, whole message, index after it)."""
    n = len(lines)
    while i < n:
        ln = lines[i]
        if ln.strip() and not ln[0].isspace():
            m = _EXC_LINE_RE.match(ln.rstrip())
            if m and _is_exception_name(m.group("type")):
                first = (m.group("msg") or "").strip()
                msg = [first]
                j = i + 1
                # continuation: until a blank line, another traceback, or a log line that starts a new record
                while j < n and j - i < 40:
                    nxt = lines[j]
                    if not nxt.strip() or _TB_HEADER in nxt or nxt.startswith(("During handling", "The above")):
                        break
                    msg.append(nxt.rstrip())
                    j += 1
                return m.group("type"), first, "\n".join(msg).strip(), j
            if not ln.startswith(("During handling", "The above")):
                return None, "", "", i
        i += 1
    return None, "", "", i


def parse_traceback(log_text: str) -> ParsedTraceback | None:
    """The last Python traceback in a log that is a cause (`_is_noise`), or a compile-time SyntaxError block (which
    has no Traceback header).

    A DataLoader worker's `Original Traceback` counts as the last one, which is what we want: its frames are the
    user's dataset code, not the re-raise in the main process.
    """
    lines = _clean_lines(log_text)
    headers = [i for i, ln in enumerate(lines) if _TB_HEADER in ln]
    if headers:
        blocks = [(h, _traceback_at(lines, h)) for h in headers[-12:]]
        # the cause, not the noise after it: a traceback Python prints while shutting down (`Exception ignored in`:
        # a DataLoader's `__del__` interrupted, wandb's atexit hook on a broken pipe) or a launcher's own report that
        # its child failed (torchrun's ChildFailedError, accelerate's CalledProcessError) comes after the child's
        # real error; the last traceback that is neither is the one to read
        causes = [tb for h, tb in blocks if not _is_noise(lines, h, tb)]
        return causes[-1] if causes else blocks[-1][1]
    # no header: `python train.py` with a syntax error prints only the File line, the code, a caret and the error
    lo = max(0, len(lines) - 400)
    for i in range(len(lines) - 1, lo - 1, -1):
        m = _EXC_LINE_RE.match(lines[i].rstrip())
        if not m or m.group("type").rsplit(".", 1)[-1] not in _SYNTAX_TYPES:
            continue
        start = i
        frames = []
        for j in range(i - 1, max(-1, i - 8), -1):
            fm = _FRAME_RE.match(lines[j])
            if fm:
                frames.append(TracebackFrame(fm.group("file"), int(fm.group("line")), fm.group("func"), None))
                start = j
                break
        exc, first, full, end = _read_exception(lines, i)
        return ParsedTraceback(frames, exc, first, full, "\n".join(lines[start:end]))
    return None


def _around_traceback(text: str, tb: ParsedTraceback, before: int = 600) -> str:
    """The traceback as printed and the few hundred characters printed just before it."""
    at = text.rfind(tb.text[:200]) if tb.text else -1
    return text[max(0, at - before):at] + tb.text if at >= 0 else tb.text


# exceptions a launcher raises about its child, whose own traceback came before: the child's is the cause
_WRAPPER_EXCEPTIONS = frozenset({"ChildFailedError", "CalledProcessError"})


def _is_noise(lines: list[str], header: int, tb: ParsedTraceback) -> bool:
    """Whether the traceback at `header` is shutdown noise or a launcher's wrapper, not a failure's cause."""
    before = " ".join(ln.strip() for ln in lines[max(0, header - 3):header])
    return "Exception ignored" in before or (tb.exc_type or "").rsplit(".", 1)[-1] in _WRAPPER_EXCEPTIONS


def _traceback_at(lines: list[str], header: int) -> ParsedTraceback:
    """The traceback whose header is lines[header]: its frames (with the code line under each) and its exception."""
    frames: list[TracebackFrame] = []
    i = header + 1
    while i < len(lines):
        ln = lines[i]
        fm = _FRAME_RE.match(ln)
        if fm:
            code = None
            if i + 1 < len(lines) and lines[i + 1].startswith("    ") and not _FRAME_RE.match(lines[i + 1]):
                code = lines[i + 1].strip()
            frames.append(TracebackFrame(fm.group("file"), int(fm.group("line")), fm.group("func"), code))
            i += 1
            continue
        if ln.strip() and not ln[0].isspace():
            break
        i += 1
    exc, first, full, end = _read_exception(lines, i)
    return ParsedTraceback(frames, exc, first, full, "\n".join(lines[header:end]))


def _is_library(path: str) -> bool:
    """True for frames outside the user's code: installed packages, the standard library, frozen importlib."""
    p = path.replace("\\", "/")
    if p in ("<string>", "<stdin>") or p.startswith("<ipython"):
        return False
    if p.startswith("<"):
        return True
    if "/site-packages/" in p or "/dist-packages/" in p:
        return True
    return re.search(r"/lib/python\d+(?:\.\d+)?/", p) is not None or "/lib64/python" in p


_WORKTREE_RE = re.compile(r"/\.nightlab/worktrees/[^/]+/(.+)$")


def _relative(path: str, root: str | Path | None) -> str:
    """A frame's path relative to the repository: to `root` when given, else to the experiment worktree
    (`.nightlab/worktrees/<id>/`) the path lies in; otherwise as printed."""
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(root).resolve()))
        except (ValueError, OSError):
            pass
    m = _WORKTREE_RE.search(path.replace("\\", "/"))
    return m.group(1) if m else path


def _user_frame(frames: list[TracebackFrame]) -> TracebackFrame | None:
    for fr in reversed(frames):
        if not _is_library(fr.file):
            return fr
    return frames[-1] if frames else None


def _trim(tb: str) -> str:
    lines = tb.splitlines()
    if len(lines) <= _TRACEBACK_LINES:
        return tb
    head = lines[:3]
    tail = lines[-(_TRACEBACK_LINES - 4):]
    return "\n".join([*head, f"  ... ({len(lines) - len(head) - len(tail)} lines omitted) ...", *tail])


# --- what an exception means ------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text)]


_SHAPE_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)"),
     lambda m: {"lhs": [int(m[1]), int(m[2])], "rhs": [int(m[3]), int(m[4])]}),
    (re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) "
                r"at non-singleton dimension (\d+)"),
     lambda m: {"a": int(m[1]), "b": int(m[2]), "dim": int(m[3])}),
    (re.compile(r"shape '\[([-\d, ]*)\]' is invalid for input of size (\d+)"),
     lambda m: {"shape": _ints(m[1]), "numel": int(m[2])}),
    (re.compile(r"Expected input batch_size \((\d+)\) to match target batch_size \((\d+)\)"),
     lambda m: {"input_batch": int(m[1]), "target_batch": int(m[2])}),
    (re.compile(r"weight of size \[([\d, ]+)\], expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+)"),
     lambda m: {"weight": _ints(m[1]), "input": _ints(m[2]), "expected_channels": int(m[3]),
                "got_channels": int(m[4])}),
    (re.compile(r"target size \(torch\.Size\(\[([\d, ]*)\]\)\) that is different to the input size "
                r"\(torch\.Size\(\[([\d, ]*)\]\)\)"),
     lambda m: {"target": _ints(m[1]), "input": _ints(m[2])}),
    (re.compile(r"could not be broadcast together with shapes? \(([\d, ]*)\)\s*\(([\d, ]*)\)"),
     lambda m: {"lhs": _ints(m[1]), "rhs": _ints(m[2])}),
    (re.compile(r"shapes \(([\d, ]*)\) and \(([\d, ]*)\) not aligned"),
     lambda m: {"lhs": _ints(m[1]), "rhs": _ints(m[2])}),
    (re.compile(r"inconsistent numbers of samples: \[([\d, ]+)\]"), lambda m: {"sizes": _ints(m[1])}),
    (re.compile(r"X has (\d+) features, but (\w+) is expecting (\d+) features"),
     lambda m: {"got_features": int(m[1]), "expected_features": int(m[3]), "estimator": m[2]}),
    (re.compile(r"Expected (\d)D \(unbatched\) or (\d)D \(batched\) input to (\w+), "
                r"but got input of size: \[([\d, ]+)\]"),
     lambda m: {"op": m[3], "input": _ints(m[4])}),
    (re.compile(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from checkpoint, "
                r"the shape in current model is torch\.Size\(\[([\d, ]*)\]\)"),
     lambda m: {"param": m[1], "checkpoint": _ints(m[2]), "model": _ints(m[3])}),
    (re.compile(r"Target (-?\d+) is out of bounds"), lambda m: {"target": int(m[1])}),
    (re.compile(r"index (-?\d+) is out of bounds for (?:dimension|axis) (\d+) with size (\d+)"),
     lambda m: {"index": int(m[1]), "dim": int(m[2]), "size": int(m[3])}),
]
_SHAPE_WORDS = (
    "size mismatch", "shape mismatch", "shapes cannot be multiplied", "must match the size of tensor",
    "dimension out of range", "expected input with shape", "expected 2d array", "expected 1d array",
    "to have 3 channels", "channels, but got", "not aligned", "could not be broadcast",
    "inconsistent numbers of samples",
    "is invalid for input of size", "sizes of tensors must match", "out of bounds for dimension",
    "out of bounds for axis", "index out of range in self", "is out of bounds", "too many indices",
    "expected sequence of length", "features, but", "to match target batch_size", "different to the input size",
    "input to conv", "but got input of size", "the size of tensor", "incompatible shapes", "cannot reshape",
    "must have the same shape", "doesn't match the broadcast shape", "expected 3d", "expected 4d",
)
_DTYPE_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"expected scalar type (\w+) but found (\w+)", re.I), lambda m: {"expected": m[1], "found": m[2]}),
    (re.compile(r"Found dtype (\w+) but expected (\w+)"), lambda m: {"found": m[1], "expected": m[2]}),
    (re.compile(r"must have the same dtype, but got (\w+) and (\w+)"), lambda m: {"lhs": m[1], "rhs": m[2]}),
    (re.compile(r"\"(\w+)\" not implemented for '(\w+)'"), lambda m: {"op": m[1], "dtype": m[2]}),
    (re.compile(r"Input type \(([\w.]+)\) and weight type \(([\w.]+)\) should be the same"),
     lambda m: {"input": m[1], "weight": m[2]}),
    (re.compile(r"result type (\w+) can't be cast to the desired output type (\w+)"),
     lambda m: {"result": m[1], "output": m[2]}),
]
_DTYPE_WORDS = (
    "expected scalar type", "scalar type", "same dtype", "found dtype", "not implemented for '", "can't be cast",
    "should be the same", "can't convert np.ndarray of type", "expected object of scalar type", "dtype", "doubletensor",
    "must be long", "one of the following scalar types", "expected floating point", "cannot be cast",
)
_DEVICE_WORDS = (
    "expected all tensors to be on the same device", "cuda error", "torch not compiled with cuda", "no cuda gpus",
    "found no nvidia driver", "cuda driver version is insufficient", "torch.cuda.is_available() is false",
    "invalid device ordinal", "cudnn_status", "nccl error", "mps backend", "device-side assert",
    "no kernel image is available", "cuda-capable device", "is on cpu, but", "is on cuda", "cuda is not available",
    "cublas_status", "cuda initialization",
)
_OOM_WORDS = (
    "out of memory", "can't allocate memory", "cannot allocate memory", "unable to allocate", "std::bad_alloc",
    "cublas_status_alloc_failed", "oom-kill", "oom killer", "memoryerror", "killed by signal: killed",
    "insufficient shared memory",
)
# DataLoader workers that could not get shared memory (/dev/shm small or read-only in a container or sandbox): not an
# out-of-memory of the training itself, and its fix is different (fewer workers, not a smaller batch)
_SHM_RE = re.compile(r"unable to allocate shared memory\(shm\)|out of shared memory|insufficient shared memory|"
                     r"unable to open shared memory object|"
                     r"DataLoader worker \(pid[^)]*\) is killed by signal: Bus error")
_NAN_WORDS = (
    "returned nan values", "loss is nan", "nan loss", "non-finite loss", "loss became nan", "detected nan",
    "loss is inf", "nan or inf found", "has nan", "contains nan",
)


# (`Input X contains NaN` names the features; a bare `Input contains NaN` from a metric is usually a diverged model)
_MISSING_VALUES_RE = re.compile(r"input x contains (?:nan|infinity)|contains missing values")
# Lightning: "The loss returned in `training_step` is tensor(nan, device='cuda:0', grad_fn=...)" / "is nan or inf"
_LIGHTNING_NAN_RE = re.compile(r"loss returned in `?training_step`? is .{0,20}\b(?:nan|inf)\b")
# the assertion CUDA prints above `device-side assert triggered` when a class label is outside [0, n_classes)
_LABEL_ASSERT_RE = re.compile(r"Assertion `t >= 0 && t < n_classes` failed|Assertion `cur_target >= 0 && "
                              r"cur_target < n_classes` failed")


def _first(patterns: list[tuple[re.Pattern[str], Any]], text: str) -> dict[str, Any]:
    for pat, build in patterns:
        m = pat.search(text)
        if m:
            built: dict[str, Any] = build(m)
            return built
    return {}


def _oom_details(text: str) -> dict[str, Any]:
    low = text.lower()
    device = "cuda" if ("cuda" in low or "gpu" in low or "cublas" in low) else "mps" if "mps" in low else (
        "shm" if "shared memory" in low else "cpu")
    d: dict[str, Any] = {"device": device}
    m = re.search(r"(?:Tried to allocate|Unable to allocate) ([\d.]+ ?[KMGT]i?B)", text)
    if m:
        d["requested"] = m.group(1)
    m = re.search(r"total capacity of ([\d.]+ ?[KMGT]i?B)", text)
    if m:
        d["capacity"] = m.group(1)
    m = re.search(r"of which ([\d.]+ ?[KMGT]i?B) is free", text)
    if m:
        d["free"] = m.group(1)
    return d


# a job that could not reach a host: a download of data or weights (torchvision's `download=True`, the Hugging Face
# Hub) in a sandbox without network, or on a machine without one. An HTTP error (403, 404) is the server's answer,
# not a missing network, and is not one of these.
_NETWORK_TYPES = frozenset({"URLError", "ConnectionError", "gaierror", "MaxRetryError", "NewConnectionError",
                            "ConnectTimeout", "ConnectTimeoutError", "ConnectionRefusedError",
                            "LocalEntryNotFoundError", "OfflineModeIsEnabled", "RemoteDisconnected", "ProxyError"})
_NETWORK_WORDS = ("temporary failure in name resolution", "name or service not known", "nodename nor servname",
                  "network is unreachable", "failed to establish a new connection",
                  "no address associated with hostname", "failed to resolve",
                  "couldn't connect to 'https://huggingface.co'")
NETWORK_HINT = ("jobs have no network unless sandbox.network = true in nightlab.toml; or fetch the data once outside "
                "nightlab (untracked files are linked into every run)")


def _network_host(text: str) -> str | None:
    """The host a failed download was for, where the message names it."""
    m = re.search(r"host='([^']+)'", text) or re.search(r"https?://([A-Za-z0-9.\-]+)", text)
    return m.group(1) if m else None


def _classify_exception(exc: str, message: str) -> tuple[FailureClass, dict[str, Any]]:
    """Map an exception type and its (whole) message to a failure class and details."""
    short = exc.rsplit(".", 1)[-1]
    low = message.lower()
    if short in _SYNTAX_TYPES:
        return FailureClass.SYNTAX_ERROR, {}
    if short == "KeyboardInterrupt":
        return FailureClass.INTERRUPTED, {}
    if _SHM_RE.search(message):
        return FailureClass.WORKER_ERROR, {"cause": "shared memory"}
    if short in ("MemoryError", "OutOfMemoryError", "_ArrayMemoryError", "ArrayMemoryError") or any(
            w in low for w in _OOM_WORDS):
        return FailureClass.OOM, _oom_details(f"{exc} {message}")
    if "no space left on device" in low or "disk quota exceeded" in low:
        return FailureClass.DISK_FULL, {}
    if short in _NETWORK_TYPES or any(w in low for w in _NETWORK_WORDS):
        host = _network_host(message)
        return FailureClass.NETWORK, {"host": host} if host else {}
    if short in _COMPILE_EXCEPTIONS or any(w in low for w in _COMPILE_WORDS):  # (not every torch._dynamo.exc: a
        # TorchRuntimeError is the user's own error met while tracing, classified by its message below)
        return FailureClass.COMPILE_ERROR, {"hint": COMPILE_HINT}
    if short in ("ModuleNotFoundError", "ImportError"):
        d: dict[str, Any] = {}
        m = re.search(r"No module named '([^']+)'", message)
        if m:
            d = {"module": m.group(1), "package": m.group(1).split(".")[0]}
        m = re.search(r"cannot import name '([^']+)' from '([^']+)'", message)
        if m:
            d = {"name": m.group(1), "module": m.group(2)}
        return FailureClass.IMPORT_ERROR, d
    dtype_d = _first(_DTYPE_PATTERNS, message)
    if any(w in low for w in _DEVICE_WORDS) or (
            "input" in dtype_d and ("cuda" in dtype_d["input"]) != ("cuda" in dtype_d["weight"])):
        m = re.search(r"found at least two devices, ([\w:]+) and ([\w:]+)", message)
        return FailureClass.DEVICE_ERROR, {"devices": [m.group(1), m.group(2)]} if m else {}
    if _MISSING_VALUES_RE.search(low):  # scikit-learn's `Input X contains NaN.`: the data has gaps, no loss diverged
        return FailureClass.VALUE_ERROR, {"cause": "missing values in the input data"}
    if (any(w in low for w in _NAN_WORDS) or _LIGHTNING_NAN_RE.search(low)) and short in (
            "RuntimeError", "ValueError", "AssertionError", "Exception", "FloatingPointError"):
        return FailureClass.NAN_LOSS, {}
    if short == "FloatingPointError":
        return FailureClass.NAN_LOSS, {}
    shape_d = _first(_SHAPE_PATTERNS, message)
    if shape_d or any(w in low for w in _SHAPE_WORDS):
        return FailureClass.SHAPE_MISMATCH, shape_d
    if dtype_d or (short in ("RuntimeError", "TypeError") and any(w in low for w in _DTYPE_WORDS)):
        return FailureClass.DTYPE_ERROR, dtype_d
    if short in ("FileNotFoundError", "IsADirectoryError", "NotADirectoryError") or "no such file or directory" in low:
        m = re.search(r"No such file or directory: '([^']+)'", message) or re.search(r"'([^']+)'", message)
        return FailureClass.FILE_NOT_FOUND, {"path": m.group(1)} if m else {}
    if short == "KeyError":
        key = message.strip()
        if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
            key = key[1:-1]
        return FailureClass.KEY_ERROR, {"key": key}
    if short == "IndexError":
        return FailureClass.KEY_ERROR, {"index": True}
    if short == "AttributeError":
        d = {}
        m = re.search(r"'([\w.]+)' object has no attribute '(\w+)'", message)
        if m:
            d = {"object": m.group(1), "attribute": m.group(2)}
        m = re.search(r"module '([\w.]+)' has no attribute '(\w+)'", message)
        if m:
            d = {"module": m.group(1), "attribute": m.group(2)}
        m = re.search(r"Did you mean:? '(\w+)'", message)
        if m:
            d["suggestion"] = m.group(1)
        return FailureClass.ATTRIBUTE_ERROR, d
    if short in ("NameError", "UnboundLocalError"):
        d = {}
        m = re.search(r"(?:name|variable) '(\w+)'", message)
        if m:
            d["name"] = m.group(1)
        m = re.search(r"Did you mean:? '(\w+)'", message)
        if m:
            d["suggestion"] = m.group(1)
        return FailureClass.NAME_ERROR, d
    if short == "AssertionError":
        return FailureClass.ASSERTION_ERROR, {}
    if short in ("ValueError", "JSONDecodeError", "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError"):
        return FailureClass.VALUE_ERROR, {}
    if short == "SystemExit" and "error: " in message:
        return FailureClass.ARGUMENT_ERROR, {}
    return FailureClass.RUNTIME_ERROR, {}


# --- signals in the log without a traceback ---------------------------------------------------------------------

_ARGPARSE_RE = re.compile(r"^(?P<prog>\S+): error: (?P<msg>.+)$", re.M)
_CLICK_RE = re.compile(r"^Error: (?P<msg>(?:No such option|Got unexpected extra argument|Missing (?:option|argument)"
                       r"|Invalid value for).*)$", re.M)
_CANT_OPEN_RE = re.compile(r"can't open file '([^']+)': \[Errno 2\] No such file or directory")
_NO_MODULE_RE = re.compile(r"^\S*python[\d.]*: No module named (\S+)", re.M)
_TERMINATE_RE = re.compile(r"terminate called after throwing an instance of '([^']+)'\s*\n\s*what\(\):\s*(.+)")


def _argparse_details(msg: str) -> dict[str, Any]:
    m = re.match(r"unrecognized arguments: (.+)", msg)
    if m:
        return {"unrecognized": m.group(1).split()}
    m = re.match(r"the following arguments are required: (.+)", msg)
    if m:
        return {"required": [a.strip() for a in m.group(1).split(",")]}
    m = re.match(r"argument (\S+?): invalid (\w+) value: '(.*)'", msg)
    if m:
        return {"argument": m.group(1), "type": m.group(2), "value": m.group(3)}
    m = re.match(r"argument (\S+?): (.+)", msg)
    if m:
        return {"argument": m.group(1), "problem": m.group(2)}
    return {}


def _signal_of(exit_code: int | None, reason: str) -> int | None:
    """The signal that ended the job: a negative exit code (Popen), 128+n (a shell), or the runner's reason."""
    if exit_code is not None and exit_code < 0:
        return -exit_code
    if exit_code is not None and 128 < exit_code < 128 + 65:
        return exit_code - 128
    m = re.search(r"signal (?:SIG)?(\w+)", reason)
    if m:
        names = {"KILL": 9, "TERM": 15, "INT": 2, "SEGV": 11, "ABRT": 6, "XCPU": 24, "BUS": 7, "HUP": 1}
        return names.get(m.group(1).upper().removeprefix("SIG"), int(m.group(1)) if m.group(1).isdigit() else None)
    return None


def _last_line(text: str) -> str:
    for ln in reversed(text.splitlines()):
        s = ln.strip()
        if s and not s.startswith("[nightlab:"):
            return s[:200]
    return ""


def _nan_loss(log_text: str) -> dict[str, Any] | None:
    """Where the training loss first became non-finite, or None if it never did."""
    curve = parse_loss_curve(log_text)
    for i, (step, v) in enumerate(curve):
        if not math.isfinite(v):
            last = next((x for _s, x in reversed(curve[:i]) if math.isfinite(x)), None)
            d: dict[str, Any] = {"step": step, "value": str(v)}
            if last is not None:
                d["last_finite"] = last
            return d
    return None


_TERMINAL_CODE_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def _one_line(s: str, limit: int = 240) -> str:
    """The summary as one plain line: libraries colour their messages (torch's "Weights only load failed" bolds a
    warning), and the escape codes are noise in the status table, a notification and the report's HTML."""
    s = " ".join(_TERMINAL_CODE_RE.sub("", s).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


# --- the classifier ---------------------------------------------------------------------------------------------


def classify_failure(
    log_text: str,
    exit_code: int | None,
    state: str,
    reason: str = "",
    metric_error: str | None = None,
    *,
    root: str | Path | None = None,
) -> Failure:
    """Classify why a job failed from its log (stdout+stderr), exit code and end state.

    `state` is the runner's end state: succeeded | failed | timed_out | killed | lost; `reason` the runner's words
    for it ("exceeded the 600 s timeout", "killed by signal SIGKILL", "protected files changed: eval.py").
    `metric_error` is MetricReading.error for a job that exited 0. `root` (the worktree) makes file paths
    repo-relative. The order of the checks is the order of precedence: a changed protected file invalidates any run;
    the runner's own verdicts (lost, timeout, cancelled) beat what the log says; a traceback beats loose text.
    """
    text = log_text[-_TAIL_CHARS:] if len(log_text) > _TAIL_CHARS else log_text
    low_reason = reason.lower()
    sig = _signal_of(exit_code, reason)
    exit_txt = f"exit {exit_code}" if exit_code is not None else (f"signal {sig}" if sig else "no exit status")

    def fail(cls: FailureClass, summary: str, **kw: Any) -> Failure:
        return Failure(cls, _one_line(summary), **kw)

    if "protected" in low_reason:
        return fail(FailureClass.PROTECTED_MODIFIED, f"the run changed a protected file ({reason})",
                    details={"reason": reason})
    if state == JobEnd.LOST:
        return fail(FailureClass.LOST,
                    f"the job's process disappeared without a status{': ' + reason if reason else ''}")
    if state == JobEnd.TIMED_OUT:
        m = re.search(r"([\d.]+)\s*s", reason)
        d: dict[str, Any] = {"timeout_s": float(m.group(1))} if m else {}
        return fail(FailureClass.TIMEOUT,
                    f"timed out{' (' + reason + ')' if reason else ''}; last output: {_last_line(text)}", details=d)
    if "fork storm" in low_reason:  # the wrapper's process cap (cgroup pids.max, RLIMIT_NPROC or its count)
        return fail(FailureClass.FORK_STORM, f"{reason} ({exit_txt})", details={"reason": reason})
    if sig == 24 or "xcpu" in low_reason:
        return fail(FailureClass.TIMEOUT, "CPU-time limit exceeded (SIGXCPU)", details={"limit": "cpu_seconds"})
    if state == JobEnd.KILLED:
        if "interrupt" in low_reason:
            return fail(FailureClass.INTERRUPTED, f"interrupted ({reason})")
        if "memory" in low_reason:
            return fail(FailureClass.OOM, f"killed: {reason}", details={"device": "cpu", "reason": reason})
        return fail(FailureClass.KILLED, reason or "stopped by nightlab or the user",
                    details={"reason": reason} if reason else {})

    low = text.lower()
    if _SHM_RE.search(text) and parse_traceback(text) is None:
        return fail(FailureClass.WORKER_ERROR,
                    f"DataLoader workers got no shared memory ({exit_txt}): {_last_line(text)}",
                    details={"cause": "shared memory"})
    memory_hint = any(w in low for w in _OOM_WORDS) or "memory" in low_reason or re.search(
        r"^(?:\S+: line \d+:\s+\d+\s+)?Killed\b", text, re.M) is not None  # (the kernel's, or bash's `4242 Killed`)
    if sig == 9:
        # nothing can print a traceback under SIGKILL; the kernel's OOM killer is the usual sender
        if memory_hint:
            return fail(FailureClass.OOM, f"killed by SIGKILL after running out of memory ({exit_txt})",
                        details={**_oom_details(text), "signal": 9})
        return fail(FailureClass.KILLED, f"killed by SIGKILL ({exit_txt}); last output: {_last_line(text)}",
                    details={"signal": 9})

    tb = parse_traceback(text)
    if tb is not None and tb.exc_type is not None:
        cls, details = _classify_exception(tb.exc_type, tb.full_message)
        frame = _user_frame(tb.frames)
        if cls == FailureClass.SYNTAX_ERROR and tb.frames:
            frame = tb.frames[-1]  # where the bad code is, even if that is not the user's file
            caret = re.search(r"\n(\s*)\^+", tb.text)
            if frame.code is None:
                code_m = re.search(r'line \d+\n(.+)\n\s*\^', tb.text)
                if code_m:
                    details["code"] = code_m.group(1).strip()
            elif frame.code:
                details["code"] = frame.code
            if caret:
                details["caret"] = True
        if cls == FailureClass.DEVICE_ERROR and _LABEL_ASSERT_RE.search(text):
            cls, details = FailureClass.SHAPE_MISMATCH, {"cause": "a class label outside [0, n_classes)"}
        near = _around_traceback(text, tb).lower()  # the traceback and what was printed just before it: a retry
        # warning elsewhere in a job that has no network is no cause of a later, unrelated error
        if cls in (FailureClass.RUNTIME_ERROR, FailureClass.VALUE_ERROR, FailureClass.FILE_NOT_FOUND) and any(
                w in near for w in _NETWORK_WORDS) and re.search(r"download|connect|can't load|resolve|url", near):
            # a download that failed for want of a network, re-raised as something else (HF's `OSError: Can't
            # load tokenizer`, torchvision's `RuntimeError: Error downloading`): the cause is the network
            cls, details = FailureClass.NETWORK, {}
        if cls == FailureClass.ASSERTION_ERROR and not tb.message and tb.frames and tb.frames[-1].code:
            details = {**details, "code": tb.frames[-1].code}  # `assert config.n_embd % config.n_head == 0`
        if cls in (FailureClass.VALUE_ERROR, FailureClass.ASSERTION_ERROR, FailureClass.RUNTIME_ERROR):
            nan = _nan_loss(log_text)
            if nan is not None:
                details = {**details, **nan, "raised": tb.exc_type}
                cls = FailureClass.NAN_LOSS
        file = _relative(frame.file, root) if frame else None
        line = frame.line if frame else None
        where = f" at {file}:{line}" if file else ""
        msg = tb.message or details.get("code", "")
        if msg.endswith(":") and "\n" in tb.full_message:  # "Error(s) in loading state_dict for Net:" + its reasons
            msg = f"{msg} {tb.full_message.splitlines()[1].strip()}"
        summary = f"{tb.exc_type}: {msg}{where}" if msg else f"{tb.exc_type}{where}"
        if cls == FailureClass.COMPILE_ERROR:
            why = "no working C++ compiler" if "c++ compiler" in tb.full_message.lower() else \
                "no working triton" if "triton" in tb.full_message.lower() else tb.exc_type.rsplit(".", 1)[-1]
            summary = f"torch.compile could not build the model here ({why}){where}: {COMPILE_HINT}"
        if cls == FailureClass.NETWORK:  # the remedy first: the summary is cut at 240 characters
            host = details.get("host") or _network_host(tb.text)  # else the URL in the failing line of code
            if host:
                details["host"] = host
            summary = f"could not reach {host or 'the network'} ({tb.exc_type}){where}: {NETWORK_HINT}"
        if frame is not None and frame.func and frame.func != "<module>":
            details.setdefault("function", frame.func)
        if exit_code == 0 and metric_error:
            details["exit_code"] = 0
        return Failure(cls, _one_line(summary), tb.exc_type.rsplit(".", 1)[-1], tb.full_message or None, file, line,
                       _trim(tb.text), details)

    # no traceback: loose signals in the text
    if "no space left on device" in low or "disk quota exceeded" in low:
        return fail(FailureClass.DISK_FULL, f"no space left on device ({exit_txt})")
    term = _TERMINATE_RE.search(text)
    if term is not None:
        cls, details = _classify_exception(term.group(1), term.group(2))
        if cls == FailureClass.RUNTIME_ERROR and sig == 6:
            details["signal"] = 6
        return fail(cls, f"{term.group(1)}: {term.group(2).strip()}", exception=term.group(1),
                    message=term.group(2).strip(), details=details)
    if memory_hint and (exit_code != 0 or state == JobEnd.FAILED):
        return fail(FailureClass.OOM, f"out of memory ({exit_txt}): {_last_line(text)}", details=_oom_details(text))
    m = _ARGPARSE_RE.search(text)
    if m is not None and (exit_code == 2 or "usage:" in low):
        prog = m.group("prog")
        return fail(FailureClass.ARGUMENT_ERROR, f"{prog}: error: {m.group('msg')}", file=prog,
                    message=m.group("msg"), details=_argparse_details(m.group("msg")))
    m = _CLICK_RE.search(text)
    if m is not None:
        return fail(FailureClass.ARGUMENT_ERROR, f"Error: {m.group('msg')}", message=m.group("msg"))
    m = _CANT_OPEN_RE.search(text)
    if m is not None:
        return fail(FailureClass.FILE_NOT_FOUND, f"can't open file {m.group(1)!r}", details={"path": m.group(1)})
    if "command not found" in low_reason or exit_code == 127:
        cmd = reason.split(":", 1)[1].strip() if ":" in reason else ""
        return fail(FailureClass.FILE_NOT_FOUND, f"command not found{': ' + cmd if cmd else ''} ({exit_txt})",
                    details={"command": cmd} if cmd else {})
    m = _NO_MODULE_RE.search(text)
    if m is not None:
        mod = m.group(1).strip("'\"")
        return fail(FailureClass.IMPORT_ERROR, f"No module named {mod}", exception="ModuleNotFoundError",
                    details={"module": mod, "package": mod.split(".")[0]})
    if "log" in low_reason and any(w in low_reason for w in ("cap", "flood", "limit", "too large")):
        return fail(FailureClass.LOG_FLOOD, f"the job printed too much output ({reason})", details={"reason": reason})

    nan = _nan_loss(log_text)
    if nan is not None and (state == JobEnd.FAILED or metric_error):
        return fail(FailureClass.NAN_LOSS, f"training loss became {nan['value']} at step {nan['step']}", details=nan)
    if sig == 2 or "keyboardinterrupt" in low:
        return fail(FailureClass.INTERRUPTED, f"interrupted (SIGINT, {exit_txt})")
    if sig == 11 or "segmentation fault" in low:
        return fail(FailureClass.RUNTIME_ERROR, f"segmentation fault ({exit_txt}); last output: {_last_line(text)}",
                    details={"signal": 11})
    if sig is not None and state == JobEnd.FAILED:
        return fail(FailureClass.KILLED, f"killed by signal {sig} ({exit_txt}); last output: {_last_line(text)}",
                    details={"signal": sig})

    capped = "[nightlab: log capped" in text
    if state == JobEnd.SUCCEEDED or exit_code == 0:
        if metric_error and re.search(r"\bis -?(?:nan|inf)\b", metric_error):
            return fail(FailureClass.NAN_METRIC, f"{metric_error} (exit 0)", details={"metric_error": metric_error})
        if metric_error:
            if capped:
                return fail(FailureClass.LOG_FLOOD, f"{metric_error}: the log was capped and the metric may be in the "
                                         "dropped part", details={"metric_error": metric_error})
            return fail(FailureClass.NO_METRIC, f"{metric_error} (exit 0); last output: {_last_line(text)}",
                        details={"metric_error": metric_error})
        return fail(FailureClass.UNKNOWN, "the job exited 0 and printed its metric: no failure found")
    if capped:
        return fail(FailureClass.LOG_FLOOD,
                    f"failed ({exit_txt}) after flooding its log; last output: {_last_line(text)}")
    return fail(FailureClass.UNKNOWN,
                f"failed ({exit_txt}) without a recognisable error; last output: {_last_line(text)}",
                details={"exit_code": exit_code} if exit_code is not None else {})


# --- learning-curve pathologies ---------------------------------------------------------------------------------

_MIN_POINTS = 4


def _downsample(values: list[float], steps: list[int], limit: int = 600) -> tuple[list[float], list[int]]:
    """Block means (and block-end steps) when a curve is long, so the medians below stay cheap."""
    n = len(values)
    if n <= limit:
        return values, steps
    size = math.ceil(n / limit)
    vs, ss = [], []
    for i in range(0, n, size):
        block = values[i:i + size]
        vs.append(sum(block) / len(block))
        ss.append(steps[min(i + size, n) - 1])
    return vs, ss


def _trailing_median(values: list[float], w: int) -> list[float]:
    return [statistics.median(values[max(0, i - w + 1):i + 1]) for i in range(len(values))]


def _centered_mean(values: list[float], w: int) -> list[float]:
    """The local trend for measuring noise (a median would follow one side of a zig-zag and hide it)."""
    h = w // 2
    out = []
    for i in range(len(values)):
        win = values[max(0, i - h):i + h + 1]
        out.append(sum(win) / len(win))
    return out


def _slope(ys: list[float]) -> float:
    n = len(ys)
    mx = (n - 1) / 2
    my = sum(ys) / n
    den = sum((i - mx) ** 2 for i in range(n))
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / den if den else 0.0


def _g(x: float) -> str:
    return f"{x:.4g}"


def curve_pathologies(
    loss_curve: list[tuple[int, float]],
    val_curve: list[tuple[int, float]] | None = None,
    *,
    goal: str = "minimize",
    seconds: float | None = None,
    timeout_s: float | None = None,
) -> list[Pathology]:
    """Learning-curve pathologies, most important first: nan, diverging, overfitting, too_slow, underfitting,
    plateau, still_improving, noisy.

    `loss_curve` is the training loss (lower is better); `val_curve` an optional held-out curve whose direction is
    `goal`. Shape checks need at least 4 finite training points (fewer → none of them); `nan` (any non-finite
    training loss) and `too_slow` (seconds > 0.8 * timeout_s) do not depend on the curve's length. Thresholds are
    relative to the curve's own scale and the curve is smoothed with a running median first, so ordinary minibatch
    noise is not read as divergence.
    """
    out: list[Pathology] = []
    pts = list(loss_curve or [])
    bad = [(s, v) for s, v in pts if not math.isfinite(v)]
    fin = [(s, v) for s, v in pts if math.isfinite(v)]
    if bad:
        s0, v0 = bad[0]
        before = [v for s, v in pts[: pts.index(bad[0])] if math.isfinite(v)]
        last_ok = f" (last finite value {_g(before[-1])})" if before else ""
        out.append(Pathology("nan", f"train loss became {v0} at step {s0}{last_ok}; {len(bad)} of {len(pts)} "
                                    "points are non-finite"))
        fin = [(s, v) for s, v in pts[: pts.index(bad[0])] if math.isfinite(v)]  # the shape up to the blow-up
    slow: Pathology | None = None
    if seconds is not None and timeout_s and seconds > 0.8 * timeout_s:
        slow = Pathology("too_slow", f"the run took {seconds:.0f} s of its {timeout_s:.0f} s timeout "
                                     f"({100 * seconds / timeout_s:.0f}%)")
    if len(fin) < _MIN_POINTS:
        if slow:
            out.append(slow)
        return out

    values, steps = _downsample([v for _s, v in fin], [s for s, _v in fin])
    n = len(values)
    w = max(1, n // 10)
    sm = _trailing_median(values, w)
    start = statistics.median(values[: max(1, min(w, 3))])
    end = sm[-1]
    lo_i = min(range(n), key=lambda i: sm[i])
    lo = sm[lo_i]
    drop = start - lo
    rise = end - lo
    scale = max(abs(start), abs(end), 1e-12)

    diverging = False
    if lo_i < n - 1 and rise > 0.05 * scale and (rise > 0.5 * drop or end > start):
        diverging = True
        pct = round(100 * (n - 1 - lo_i) / (n - 1))
        out.append(Pathology("diverging", f"train loss rose from {_g(lo)} (step {steps[lo_i]}) to {_g(end)} "
                                          f"(step {steps[-1]}) over the last {pct}% of steps"))
    elif n >= 2 and min(values[-2:]) > max(start, lo) + 0.5 * scale and values[-1] > 2 * max(end, 1e-12):
        diverging = True
        out.append(Pathology("diverging", f"train loss jumped to {_g(values[-1])} at step {steps[-1]} "
                                          f"(it had reached {_g(lo)})"))

    if val_curve:
        vfin = [(s, v) for s, v in val_curve if math.isfinite(v)]
        if len(vfin) >= _MIN_POINTS and not diverging:
            vv = [v for _s, v in vfin]
            g = Goal(goal)
            best_i = min(range(len(vv)), key=lambda i: -g.sign * vv[i])  # the first best value
            best, vend, vstart = vv[best_i], vv[-1], vv[0]
            worse = g.gain(best, vend)
            # beyond epoch-to-epoch noise: a real share of what was gained, or of the value itself
            need = max(0.03 * abs(best), 0.25 * abs(vstart - best), 1e-12)
            # and the model must be fitting the training data: a train loss still near its start is under-fitting
            fitting = start != 0 and (start - end) / abs(start) >= 0.2
            if 0 < best_i < len(vv) - 1 and worse > need and fitting:  # it improved first, then got worse
                # train loss at the same point of the run (by fraction: the two curves may count steps differently)
                frac = best_i / (len(vv) - 1)
                ti = min(n - 1, round(frac * (n - 1)))
                t_at, t_end = sm[ti], end
                if t_at - t_end > 0.05 * max(abs(t_at), 1e-12):
                    out.append(Pathology("overfitting", f"validation worsened from {_g(best)} (best, step "
                                                        f"{vfin[best_i][0]}) to {_g(vend)} while train loss fell from "
                                                        f"{_g(t_at)} to {_g(t_end)}"))
    if slow:
        out.append(slow)
    if diverging:
        return out

    # the last quarter: still falling?
    tail_n = max(3, n // 4)
    tail = values[-tail_n:]
    tail_sm = sm[-tail_n:]
    slope = _slope(tail)
    tail_drop = -slope * (tail_n - 1)
    resid = [y - (tail[0] + slope * i) for i, y in enumerate(tail)]
    noise = statistics.pstdev(resid) if len(resid) > 1 else 0.0
    # the fall must stand out of the noise: twice the standard error of a fitted drop over tail_n points
    significant = tail_drop > 2 * noise * math.sqrt(12 / tail_n)
    still = tail_drop > 0.03 * max(abs(end), 1e-12) and significant and tail_sm[0] > tail_sm[-1]
    learned = (start - end) / abs(start) if start else 0.0

    if still and learned < 0.5:
        out.append(Pathology("underfitting", f"train loss only fell {100 * learned:.0f}% ({_g(start)} → {_g(end)}) "
                                             "and is still falling: the run stops before the model fits the data"))
    half = sm[n // 2]
    flat = abs(half - end) < 0.03 * scale
    if flat and not still and learned < 0.5:
        out.append(Pathology("plateau", f"train loss flat at {_g(end)} over the last half (from {_g(half)}, "
                                        f"{100 * abs(half - end) / scale:.1f}% change), only {100 * learned:.0f}% "
                                        f"below its start {_g(start)}"))
    if still:
        fell = 100 * (tail_sm[0] - end) / max(abs(tail_sm[0]), 1e-12)
        out.append(Pathology("still_improving", f"train loss still falling at the end: {_g(tail_sm[0])} → {_g(end)} "
                                                f"(-{fell:.0f}%) over the last {tail_n} of {n} points"))
    if n >= 8:
        cw = max(3, (n // 10) | 1)
        trend = _centered_mean(values, cw)
        h = n // 2
        res = [abs(v - t) for v, t in zip(values[h:], trend[h:], strict=True)]
        level = statistics.median([abs(v) for v in values[h:]]) or 1e-12
        rel = statistics.median(res) / level
        if rel > 0.1:
            out.append(Pathology("noisy", f"train loss jumps ±{100 * rel:.0f}% around its trend over the last half "
                                          f"(median level {_g(level)})"))
    return out
