"""Failure classes from real-looking (and real) logs, and learning-curve pathologies from synthetic curves."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent.diagnose import FAILURE_CLASSES, Failure, classify_failure, curve_pathologies, parse_traceback

WT = "/home/ana/proj/.nightlab/worktrees/7"
SITE = "/home/ana/proj/.venv/lib/python3.11/site-packages"

SHAPE_LOG = f"""\
epoch   1  train_loss 2.2814
Traceback (most recent call last):
  File "{WT}/train.py", line 47, in <module>
    logits = model(xb)
             ^^^^^^^^^
  File "{SITE}/torch/nn/modules/module.py", line 1751, in _wrapped_call_impl
    return self._call_impl(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/torch/nn/modules/module.py", line 1762, in _call_impl
    return forward_call(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/torch/nn/modules/linear.py", line 125, in forward
    return F.linear(input, self.weight, self.bias)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x128 and 512x64)
"""

NESTED_SHAPE_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 47, in <module>
    logits = model(xb)
  File "{SITE}/torch/nn/modules/module.py", line 1762, in _call_impl
    return forward_call(*args, **kwargs)
  File "{WT}/models/cnn.py", line 31, in forward
    x = self.conv1(x)
  File "{SITE}/torch/nn/modules/conv.py", line 549, in _conv_forward
    return F.conv2d(
RuntimeError: Given groups=1, weight of size [16, 3, 3, 3], expected input[32, 1, 28, 28] to have 3 channels, \
but got 1 channels instead
"""

IMPORT_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 12, in <module>
    import yaml
ModuleNotFoundError: No module named 'yaml'
"""

SYNTAX_LOG = f"""\
  File "{WT}/train.py", line 23
    model = Net(hidden=64,
               ^
SyntaxError: '(' was never closed
"""

CUDA_OOM_LOG = f"""\
epoch 1 step 10 loss 2.01
Traceback (most recent call last):
  File "{WT}/train.py", line 88, in <module>
    loss.backward()
  File "{SITE}/torch/_tensor.py", line 626, in backward
    torch.autograd.backward(
  File "{SITE}/torch/autograd/__init__.py", line 347, in backward
    _engine_run_backward(
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB of \
which 1.02 GiB is free. Including non-PyTorch memory, this process has 78.10 GiB memory in use. Of the allocated \
memory 76.20 GiB is allocated by PyTorch, and 1.20 GiB is reserved by PyTorch but unallocated.
"""

ARGPARSE_LOG = """\
usage: train.py [-h] [--lr LR] [--epochs EPOCHS]
train.py: error: unrecognized arguments: --seed 0
"""

KEY_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 61, in <module>
    main(CONFIG)
  File "{WT}/train.py", line 40, in main
    width = cfg["hidden_dim"]
            ~~~^^^^^^^^^^^^^^
KeyError: 'hidden_dim'
"""

NAN_LOSS_LOG = """\
epoch 1 train_loss 2.3012
epoch 2 train_loss 41.77
epoch 3 train_loss nan
epoch 4 train_loss nan
"""

DATALOADER_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 70, in <module>
    for xb, yb in loader:
  File "{SITE}/torch/utils/data/dataloader.py", line 1480, in _process_data
    data.reraise()
  File "{SITE}/torch/_utils.py", line 733, in reraise
    raise exception
KeyError: Caught KeyError in DataLoader worker process 0.
Original Traceback (most recent call last):
  File "{SITE}/torch/utils/data/_utils/worker.py", line 349, in _worker_loop
    data = fetcher.fetch(index)
  File "{WT}/data.py", line 18, in __getitem__
    return self.rows[i]["label"]
KeyError: 'label'
"""

DEVICE_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 52, in <module>
    out = model(x)
RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! \
(when checking argument for argument mat1 in method wrapper_CUDA_addmm)
"""

DTYPE_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 52, in <module>
    out = model(x)
RuntimeError: expected scalar type Float but found Double
"""

RANK_LOG = f"""\
[rank0]: Traceback (most recent call last):
[rank0]:   File "{WT}/train.py", line 9, in <module>
[rank0]:     x = torch.zeros(3)[5]
[rank0]: IndexError: index 5 is out of bounds for dimension 0 with size 3
"""

CHAINED_LOG = f"""\
Traceback (most recent call last):
  File "{WT}/train.py", line 5, in <module>
    cfg = load()
KeyError: 'lr'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "{WT}/train.py", line 7, in <module>
    raise ValueError("no learning rate configured")
ValueError: no learning rate configured
"""

TABLE: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (id, log, classify_failure kwargs, expected Failure fields)
    ("shape", SHAPE_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "shape_mismatch", "exception": "RuntimeError", "file": "train.py", "line": 47,
        "summary": "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x128 and 512x64) at train.py:47",
        "details": {"lhs": [32, 128], "rhs": [512, 64]}}),
    ("nested shape", NESTED_SHAPE_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "shape_mismatch", "file": "models/cnn.py", "line": 31,
        "details": {"weight": [16, 3, 3, 3], "input": [32, 1, 28, 28], "expected_channels": 3, "got_channels": 1,
                    "function": "forward"}}),
    ("import", IMPORT_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "import_error", "exception": "ModuleNotFoundError", "file": "train.py", "line": 12,
        "summary": "ModuleNotFoundError: No module named 'yaml' at train.py:12",
        "details": {"module": "yaml", "package": "yaml"}}),
    ("syntax", SYNTAX_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "syntax_error", "exception": "SyntaxError", "file": "train.py", "line": 23,
        "summary": "SyntaxError: '(' was never closed at train.py:23",
        "details": {"code": "model = Net(hidden=64,", "caret": True}}),
    ("cuda oom", CUDA_OOM_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "oom", "exception": "OutOfMemoryError", "file": "train.py", "line": 88,
        "details": {"device": "cuda", "requested": "2.00 GiB", "capacity": "79.15 GiB", "free": "1.02 GiB"}}),
    ("argparse", ARGPARSE_LOG, {"exit_code": 2, "state": "failed"}, {
        "cls": "argument_error", "file": "train.py", "line": None,
        "summary": "train.py: error: unrecognized arguments: --seed 0",
        "details": {"unrecognized": ["--seed", "0"]}}),
    ("key", KEY_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "key_error", "exception": "KeyError", "message": "'hidden_dim'", "file": "train.py", "line": 40,
        "summary": "KeyError: 'hidden_dim' at train.py:40", "details": {"key": "hidden_dim", "function": "main"}}),
    ("nan loss, crash", NAN_LOSS_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "nan_loss", "summary": "training loss became nan at step 3",
        "details": {"step": 3, "value": "nan", "last_finite": 41.77}}),
    ("nan loss, exit 0", NAN_LOSS_LOG + "test_acc: nan\n",
     {"exit_code": 0, "state": "succeeded", "metric_error": "metric 'test_acc' is nan"}, {"cls": "nan_loss"}),
    ("nan loss raised later", NAN_LOSS_LOG + f"""Traceback (most recent call last):
  File "{WT}/train.py", line 80, in <module>
    score = r2_score(y, pred)
  File "{SITE}/sklearn/metrics/_regression.py", line 1180, in r2_score
    y_true, y_pred = check_consistent_length(y_true, y_pred)
ValueError: Input y_pred contains NaN.
""", {"exit_code": 1, "state": "failed"}, {"cls": "nan_loss", "exception": "ValueError", "file": "train.py",
                                           "line": 80}),
    ("timeout", "step 10 loss 2.0\n[nightlab: timeout after 600 s: stopping the job]\n",
     {"exit_code": None, "state": "timed_out", "reason": "exceeded the 600 s timeout"}, {
         "cls": "timeout", "details": {"timeout_s": 600.0}}),
    ("no metric", "epoch 1 train_loss 0.5\ndone\n",
     {"exit_code": 0, "state": "succeeded", "metric_error": "metric 'test_acc' never printed"}, {
         "cls": "no_metric", "summary": "metric 'test_acc' never printed (exit 0); last output: done"}),
    ("nan metric", "epoch 1 train_loss 0.5\ntest_acc: nan\n",
     {"exit_code": 0, "state": "succeeded", "metric_error": "metric 'test_acc' is nan"}, {
         "cls": "nan_metric", "summary": "metric 'test_acc' is nan (exit 0)"}),
    ("dataloader", DATALOADER_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "key_error", "file": "data.py", "line": 18, "details": {"key": "label", "function": "__getitem__"}}),
    ("device", DEVICE_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "device_error", "details": {"devices": ["cuda:0", "cpu"]}}),
    ("dtype", DTYPE_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "dtype_error", "details": {"expected": "Float", "found": "Double"}}),
    ("rank prefix", RANK_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "shape_mismatch", "file": "train.py", "line": 9, "details": {"index": 5, "dim": 0, "size": 3}}),
    ("chained", CHAINED_LOG, {"exit_code": 1, "state": "failed"}, {
        "cls": "value_error", "line": 7, "summary": "ValueError: no learning rate configured at train.py:7"}),
    ("sigkill oom", "epoch 1 train_loss 0.5\nKilled\n",
     {"exit_code": None, "state": "failed", "reason": "killed by signal SIGKILL"}, {"cls": "oom"}),
    ("sigkill 137", "epoch 1 train_loss 0.5\n", {"exit_code": 137, "state": "failed"}, {"cls": "killed"}),
    ("memory cap", "step 1\n", {"exit_code": -9, "state": "failed", "reason": "memory cap 2048 MB"}, {"cls": "oom"}),
    ("dataloader shm", "Traceback (most recent call last):\n  File \"/w/train.py\", line 7, in <module>\n"
                       "    for xb, yb in dl:\nRuntimeError: Caught RuntimeError in DataLoader worker process 0.\n"
                       "Original Traceback (most recent call last):\n  File \"/usr/lib/python3.11/site-packages/torch/"
                       "storage.py\", line 423, in _new_shared\n    return cls._new_using_fd_cpu(size)\nRuntimeError: "
                       "unable to allocate shared memory(shm) for file </torch_1_2_0>: No space left on device (28)\n",
     {"exit_code": 1, "state": "failed"}, {"cls": "worker_error", "details": {"cause": "shared memory"}}),
    ("cpu allocator", "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                      "memory: you tried to allocate 34359738368 bytes.\n", {"exit_code": 1, "state": "failed"},
     {"cls": "oom", "details": {"device": "cpu"}}),
    ("disk", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 99, in <module>
    torch.save(model.state_dict(), "ckpt.pt")
OSError: [Errno 28] No space left on device
""", {"exit_code": 1, "state": "failed"}, {"cls": "disk_full", "line": 99}),
    ("download", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 12, in <module>
    ds = datasets.MNIST("data", download=True)
  File "/usr/lib/python3/dist-packages/torchvision/datasets/utils.py", line 30, in _urlretrieve
    with urllib.request.urlopen(urllib.request.Request(url)) as response:
urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>
""", {"exit_code": 1, "state": "failed"}, {"cls": "network", "line": 12}),
    ("hub offline", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 5, in <module>
    tok = AutoTokenizer.from_pretrained("bert-base-uncased")
OSError: We couldn't connect to 'https://huggingface.co' to load this file, couldn't find it in the cached files.
""", {"exit_code": 1, "state": "failed"}, {"cls": "network", "details": {"host": "huggingface.co"}}),
    ("torch.compile without a compiler", f"""compiling the model... (takes a ~minute)
Traceback (most recent call last):
  File "{WT}/train.py", line 270, in <module>
    logits, loss = model(X, Y)
  File "/usr/lib/python3/dist-packages/torch/_dynamo/output_graph.py", line 1446, in call_user_compiler
    raise BackendCompilerFailed(self.compiler_fn, e) from e
torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised:
InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx: (None, 'g++')

Set TORCH_LOGS="+dynamo" and TORCHDYNAMO_VERBOSE=1 for more information
""", {"exit_code": 1, "state": "failed"}, {"cls": "compile_error", "line": 270}),
    ("dynamo on a newer python", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 88, in <module>
    model = torch.compile(model)
  File "/usr/lib/python3/dist-packages/torch/__init__.py", line 1441, in compile
    raise RuntimeError("Dynamo is not supported on Python 3.12+")
RuntimeError: Dynamo is not supported on Python 3.12+
""", {"exit_code": 1, "state": "failed"}, {"cls": "compile_error", "line": 88}),
    ("oom under shutdown noise", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 48, in <module>
    out = model(x)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total capacity)
Exception ignored in: <function _MultiProcessingDataLoaderIter.__del__ at 0x7f>
Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/torch/utils/data/dataloader.py", line 1479, in __del__
    self._shutdown_workers()
KeyboardInterrupt:
""", {"exit_code": 1, "state": "failed"}, {"cls": "oom", "line": 48}),
    ("oom under a launcher's report", f"""[rank0]: Traceback (most recent call last):
[rank0]:   File "{WT}/train.py", line 48, in <module>
[rank0]:     out = model(x)
[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB
Traceback (most recent call last):
  File "/usr/bin/torchrun", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
train.py FAILED
""", {"exit_code": 1, "state": "failed"}, {"cls": "oom", "line": 48}),
    ("lightning nan loss", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 88, in <module>
    trainer.fit(model, dm)
ValueError: The loss returned in `training_step` is tensor(nan, device='cuda:0', grad_fn=<NllLossBackward0>).
""", {"exit_code": 1, "state": "failed"}, {"cls": "nan_loss"}),
    ("missing values in the data", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 33, in <module>
    clf.fit(X, y)
ValueError: Input X contains NaN.
""", {"exit_code": 1, "state": "failed"},
     {"cls": "value_error", "details": {"cause": "missing values in the input data"}}),
    ("label out of range on cuda", f"""../aten/src/ATen/native/cuda/Loss.cu:250: nll_loss_forward_reduce_cuda_kernel_2d:
block: [0,0,0], thread: [5,0,0] Assertion `t >= 0 && t < n_classes` failed.
Traceback (most recent call last):
  File "{WT}/train.py", line 41, in <module>
    loss.backward()
RuntimeError: CUDA error: device-side assert triggered
""", {"exit_code": 1, "state": "failed"}, {"cls": "shape_mismatch", "line": 41}),
    ("bash reports the kill", "step 19: loss 2.31\nbash: line 1:  4242 Killed                  python train.py\n",
     {"exit_code": 137, "state": "failed"}, {"cls": "oom"}),
    ("download re-raised offline", f"""Failed to download (trying next):
<urlopen error [Errno -3] Temporary failure in name resolution>
Traceback (most recent call last):
  File "{WT}/train.py", line 9, in <module>
    ds = datasets.MNIST("data", download=True)
RuntimeError: Error downloading train-images-idx3-ubyte.gz
""", {"exit_code": 1, "state": "failed"}, {"cls": "network", "line": 9}),
    ("an assertion shows its line", f"""Traceback (most recent call last):
  File "{WT}/model.py", line 31, in __init__
    assert config.n_embd % config.n_head == 0
AssertionError
""", {"exit_code": 1, "state": "failed"}, {"cls": "assertion_error",
                                           "summary": "AssertionError: assert config.n_embd % config.n_head == 0 at "
                                                      "model.py:31"}),
    ("requests", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 7, in <module>
    r = requests.get("https://example.com/data.csv")
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='example.com', port=443): Max retries exceeded \
(Caused by NameResolutionError("Failed to resolve 'example.com'"))
""", {"exit_code": 1, "state": "failed"}, {"cls": "network", "details": {"host": "example.com"}}),
    ("http 404", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 7, in <module>
    urllib.request.urlretrieve("https://example.com/gone.csv", "gone.csv")
urllib.error.HTTPError: HTTP Error 404: Not Found
""", {"exit_code": 1, "state": "failed"}, {"cls": "runtime_error"}),
    ("keyboard", f"""Traceback (most recent call last):
  File "{WT}/train.py", line 30, in <module>
    time.sleep(1)
KeyboardInterrupt
""", {"exit_code": -2, "state": "failed"}, {"cls": "interrupted", "summary": "KeyboardInterrupt at train.py:30"}),
    ("cancelled", "step 1\n", {"exit_code": None, "state": "killed", "reason": "cancelled"}, {"cls": "killed"}),
    ("lost", "", {"exit_code": None, "state": "lost"}, {"cls": "lost"}),
    ("protected", "acc=0.9\n", {"exit_code": 0, "state": "succeeded", "reason": "protected files changed: eval.py"},
     {"cls": "protected_modified"}),
    ("command not found", "nightlab: could not start 'pyhton': No such file or directory\n",
     {"exit_code": 127, "state": "failed", "reason": "command not found: pyhton"},
     {"cls": "file_not_found", "details": {"command": "pyhton"}}),
    ("can't open", "/usr/bin/python3: can't open file '/w/trian.py': [Errno 2] No such file or directory\n",
     {"exit_code": 2, "state": "failed"}, {"cls": "file_not_found", "details": {"path": "/w/trian.py"}}),
    ("log capped", "x\n[nightlab: log capped, 999 bytes dropped from the middle]\nx\n",
     {"exit_code": 0, "state": "succeeded", "metric_error": "metric 'acc' never printed"}, {"cls": "log_flood"}),
    ("segfault", "step 1\nSegmentation fault (core dumped)\n", {"exit_code": -11, "state": "failed"},
     {"cls": "runtime_error", "details": {"signal": 11}}),
    ("c++ abort", "terminate called after throwing an instance of 'c10::Error'\n  what():  CUDA error: "
                  "device-side assert triggered\n", {"exit_code": -6, "state": "failed"}, {"cls": "device_error"}),
    ("fork storm", "spawned 5000 workers\n",
     {"exit_code": None, "state": "failed", "reason": "fork storm: 4097 processes (cap 4096)"},
     {"cls": "fork_storm", "summary": "fork storm: 4097 processes (cap 4096) (no exit status)"}),
    ("unknown", "all fine until now\n", {"exit_code": 3, "state": "failed"}, {
        "cls": "unknown", "summary": "failed (exit 3) without a recognisable error; last output: all fine until now"}),
]


@pytest.mark.parametrize(("log", "kwargs", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_failure_table(log: str, kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    f = classify_failure(log, kwargs.pop("exit_code"), kwargs.pop("state"), root=WT, **kwargs)
    assert f.cls in FAILURE_CLASSES
    for key, want in expected.items():
        got = getattr(f, key)
        if key == "details":
            assert {k: got.get(k) for k in want} == want, got
        else:
            assert got == want, f"{key}: {got!r}"
    assert "\n" not in f.summary


def test_every_class_is_reachable_from_the_table() -> None:
    seen = {t[3]["cls"] for t in TABLE}
    missing = set(FAILURE_CLASSES) - seen - {"name_error", "attribute_error", "assertion_error"}  # real ones below
    assert missing == set()


def test_without_root_paths_are_relative_to_the_worktree_else_as_printed() -> None:
    f = classify_failure(SHAPE_LOG, 1, "failed")
    assert f.file == "train.py" and f.line == 47  # under .nightlab/worktrees/7/
    assert "linear.py" in f.traceback and f.traceback.startswith("Traceback (most recent call last):")
    f = classify_failure(SHAPE_LOG.replace(WT, "/srv/code"), 1, "failed")
    assert f.file == "/srv/code/train.py"


def test_a_long_traceback_is_trimmed() -> None:
    frames = "".join(f'  File "{WT}/train.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(200))
    log = f"Traceback (most recent call last):\n{frames}RecursionError: maximum recursion depth exceeded\n"
    f = classify_failure(log, 1, "failed", root=WT)
    assert f.cls == "runtime_error" and f.exception == "RecursionError"
    assert len(f.traceback.splitlines()) <= 61
    assert f.traceback.endswith("RecursionError: maximum recursion depth exceeded")
    assert f.line == 199


def test_the_summary_is_plain_text_without_terminal_codes() -> None:
    """torch 2.6's weights_only message bolds its warning with escape codes; the summary (status, report,
    notification) carries the words only."""
    log = (f'Traceback (most recent call last):\n  File "{WT}/train.py", line 10, in load\n    blob = torch.load(p)\n'
           "_pickle.UnpicklingError: Weights only load failed. You have two options, \x1b[1mdo those steps only if "
           "you trust the source of the checkpoint\x1b[0m. \n")
    f = classify_failure(log, 1, "failed", root=WT)
    assert "\x1b" not in f.summary
    assert "two options, do those steps only if you trust the source of the checkpoint. at train.py:10" in f.summary

def test_the_last_traceback_wins() -> None:
    tb = parse_traceback(CHAINED_LOG)
    assert tb is not None and tb.exc_type == "ValueError" and tb.frames[-1].line == 7


# --- real subprocesses ------------------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path) -> tuple[str, int]:
    p = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr, p.returncode


def test_real_exception_from_python_c(tmp_path: Path) -> None:
    log, rc = _run(["-c", "import json\nprint('epoch 1 loss 0.5')\ncfg = {}\nraise ValueError('lr must be > 0')"],
                   tmp_path)
    f = classify_failure(log, rc, "failed")
    assert rc == 1
    assert f.cls == "value_error" and f.exception == "ValueError" and f.message == "lr must be > 0"
    assert f.file == "<string>" and f.line == 4
    assert f.summary == "ValueError: lr must be > 0 at <string>:4"


@pytest.mark.parametrize(
    ("body", "cls", "line", "details"),
    [
        ("def main():\n    return undefined_name\nmain()\n", "name_error", 2, {"name": "undefined_name"}),
        ("class Net:\n    pass\nNet().fc2\n", "attribute_error", 3, {"object": "Net", "attribute": "fc2"}),
        ("import json\njson.loads('{bad')\n", "value_error", 2, {}),  # JSONDecodeError: innermost user frame
        ("assert 1 + 1 == 3, 'arithmetic'\n", "assertion_error", 1, {}),
        ("open('data/missing.csv')\n", "file_not_found", 1, {"path": "data/missing.csv"}),
        ("import yaml_is_not_installed\n", "import_error", 1, {"module": "yaml_is_not_installed"}),
        ("raise MemoryError()\n", "oom", 1, {"device": "cpu"}),
        ("x = (1,\ny = 2\n", "syntax_error", 1, {"code": "x = (1,"}),
    ],
)
def test_real_script_failures(tmp_path: Path, body: str, cls: str, line: int, details: dict[str, Any]) -> None:
    (tmp_path / "train.py").write_text(body)
    log, rc = _run(["train.py"], tmp_path)
    f = classify_failure(log, rc, "failed", root=tmp_path)
    assert (f.cls, f.file, f.line) == (cls, "train.py", line), f
    assert {k: f.details.get(k) for k in details} == details


def test_real_argparse_failure(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent("""\
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.1)
        p.parse_args()
    """))
    log, rc = _run(["train.py", "--seed", "0"], tmp_path)
    f = classify_failure(log, rc, "failed")
    assert rc == 2 and f.cls == "argument_error"
    assert f.details == {"unrecognized": ["--seed", "0"]}


def test_real_exit_zero_without_metric(tmp_path: Path) -> None:
    log, rc = _run(["-c", "print('training done')"], tmp_path)
    f = classify_failure(log, rc, "succeeded", metric_error="metric 'acc' never printed")
    assert (rc, f.cls) == (0, "no_metric")


# --- pathologies ------------------------------------------------------------------------------------------------


def _curve(values: list[float], every: int = 10) -> list[tuple[int, float]]:
    return [(i * every, v) for i, v in enumerate(values)]


def _kinds(ps: list[Any]) -> list[str]:
    return [p.kind for p in ps]


def test_a_healthy_converged_curve_has_no_pathology() -> None:
    random.seed(1)
    curve = _curve([2.3 * math.exp(-i / 6) + 0.1 + random.gauss(0, 0.005) for i in range(80)])
    assert curve_pathologies(curve) == []


def test_diverging() -> None:
    ps = curve_pathologies(_curve([2.0 - 0.15 * i for i in range(10)] + [0.5 + 0.3 * i for i in range(10)]))
    assert _kinds(ps) == ["diverging"]
    assert ps[0].evidence == "train loss rose from 0.575 (step 100) to 3.05 (step 190) over the last 47% of steps"


def test_diverging_from_the_start() -> None:
    assert _kinds(curve_pathologies(_curve([1.0 + 0.1 * i for i in range(20)]))) == ["diverging"]


def test_nan_comes_first_and_the_blow_up_before_it_is_diverging() -> None:
    nan = float("nan")
    ps = curve_pathologies(_curve([2.0, 1.5, 1.2, 1.1, 3.0, 9.0, nan, nan]))
    assert _kinds(ps) == ["nan", "diverging"]
    assert ps[0].evidence.startswith("train loss became nan at step 60 (last finite value 9)")


def test_nan_is_reported_even_on_a_short_curve() -> None:
    assert _kinds(curve_pathologies(_curve([2.0, float("inf")]))) == ["nan"]


def test_plateau() -> None:
    ps = curve_pathologies(_curve([2.3, 2.2, 2.15] + [2.1 + 0.002 * (-1) ** i for i in range(30)]))
    assert _kinds(ps) == ["plateau"]
    assert "flat at 2.098" in ps[0].evidence


def test_underfitting_and_still_improving() -> None:
    ps = curve_pathologies(_curve([2.3 - 0.02 * i for i in range(30)]))
    assert _kinds(ps) == ["underfitting", "still_improving"]
    assert ps[0].evidence.startswith("train loss only fell 24% (2.28 → 1.74)")


def test_still_improving_after_learning_a_lot() -> None:
    ps = curve_pathologies(_curve([2.3 * math.exp(-i / 30) for i in range(40)]))
    assert _kinds(ps) == ["still_improving"]
    assert ps[0].evidence.startswith("train loss still falling at the end")


@pytest.mark.parametrize(("goal", "val"), [
    ("minimize", [1.0 - 0.1 * i for i in range(6)] + [0.5 + 0.05 * i for i in range(6)]),
    ("maximize", [0.5 + 0.08 * i for i in range(6)] + [0.9 - 0.05 * i for i in range(6)]),
])
def test_overfitting_is_goal_aware(goal: str, val: list[float]) -> None:
    train = _curve([2.0 * math.exp(-i / 8) + 0.05 for i in range(40)])
    ps = curve_pathologies(train, _curve(val), goal=goal)
    assert ps[0].kind == "overfitting"
    assert ps[0].evidence.startswith("validation worsened from")
    # the same validation curve read with the other goal is improving, not over-fitting
    other = "maximize" if goal == "minimize" else "minimize"
    assert "overfitting" not in _kinds(curve_pathologies(train, _curve(val), goal=other))


def test_noisy() -> None:
    ps = curve_pathologies(_curve([1.0 + 0.3 * (-1) ** i for i in range(40)]))
    assert "noisy" in _kinds(ps)
    assert "±" in next(p for p in ps if p.kind == "noisy").evidence


def test_too_slow() -> None:
    curve = _curve([2.3 * math.exp(-i / 6) + 0.1 for i in range(80)])
    ps = curve_pathologies(curve, seconds=95, timeout_s=100)
    assert _kinds(ps) == ["too_slow"]
    assert ps[0].evidence == "the run took 95 s of its 100 s timeout (95%)"
    assert curve_pathologies(curve, seconds=50, timeout_s=100) == []


@pytest.mark.parametrize("curve", [[], [(0, 1.0)], [(0, 2.0), (1, 1.0), (2, 0.5)]])
def test_short_curves_have_no_shape_pathology(curve: list[tuple[int, float]]) -> None:
    assert curve_pathologies(curve) == []
    assert curve_pathologies(curve, [(0, 1.0), (1, 2.0)]) == []


def test_long_curves_are_read_whole() -> None:
    random.seed(0)
    curve = _curve([2.0 * math.exp(-i / 20_000) + random.gauss(0, 0.01) for i in range(100_000)], every=1)
    found = curve_pathologies(curve, curve[::1000])  # 100,000 points are read, not refused (bench/ times it)
    assert all(p.kind for p in found)


def test_failure_is_a_plain_dataclass() -> None:
    f = Failure("unknown", "x")
    assert f.details == {} and f.traceback == "" and f.file is None


def test_a_cause_is_read_where_the_failure_is_not_anywhere_in_the_log() -> None:
    """A retry warning about the network early in a job that has none is no cause of an unrelated error later; an
    error met while torch.compile traces the user's code is the user's error, not a missing compiler; a bare
    `Input contains NaN` from a metric is a diverged model, not missing data."""
    log = ("WARNING Retrying after connection broken by 'NewConnectionError: Failed to establish a new connection: "
           "[Errno -3] Temporary failure in name resolution': /api\n" + "step 1 loss 0.5\n" * 300
           + f'Traceback (most recent call last):\n  File "{WT}/train.py", line 5, in <module>\n    clf.fit(X, y)\n'
             'ValueError: Solver lbfgs supports only "l2" or "none" penalties, got l1 penalty.\n')
    assert classify_failure(log, 1, "failed").cls == "value_error"
    traced = (f'Traceback (most recent call last):\n  File "{WT}/train.py", line 5, in <module>\n    out = model(x)\n'
              "torch._dynamo.exc.TorchRuntimeError: Failed running call_function <built-in function linear>: "
              "a and b must have same reduction dim, but got [64, 784] X [512, 10].\n")
    assert classify_failure(traced, 1, "failed").cls != "compile_error"
    metric_nan = (f'Traceback (most recent call last):\n  File "{WT}/train.py", line 5, in <module>\n'
                  "    r2_score(y, pred)\nValueError: Input contains NaN.\n")
    assert classify_failure(metric_nan, 1, "failed").cls == "nan_loss"
