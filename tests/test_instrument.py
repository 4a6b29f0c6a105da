"""The progress hook, log-based stages and static markers, exercised on real subprocesses."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nightlab.agent.instrument_static import instrument_copy, instrument_source, stages_from_markers
from nightlab.sandbox.instrument import ENV_PROGRESS, ENV_ROOT, STAGES, hook_dir, job_env
from nightlab.sandbox.spec import PROGRESS_FILE
from nightlab.sandbox.stages import NO_STAGE, Progress, best_stage, read_progress, stage_from_log

TINY_TRAIN = """
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(1)
torch.manual_seed(0)
X = torch.randn(320, 8)
y = (X.sum(1) > 0).long()
loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)
model = torch.nn.Linear(8, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for xb, yb in loader:                       # 20 steps
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
with torch.no_grad():
    acc = (model(X).argmax(1) == y).float().mean().item()
print("final loss", round(loss.item(), 4))
print("acc=0.5")
"""

CRASH_AFTER_DATA = """
import torch
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.zeros(64)), batch_size=8)
batch = next(iter(loader))
print("got a batch of", len(batch[0]))
raise RuntimeError("shape mismatch, say")
"""

# no DataLoader, no model.eval(): data through the first forward, evaluation through a forward under no_grad;
# clip_grad_norm_ uses no_grad on every step too, and must not count as evaluation
NO_LOADER_NO_EVAL_CALL = """
import torch

torch.set_num_threads(1)
X, y = torch.randn(64, 4), torch.randn(64, 1)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(12):
    loss = torch.nn.functional.mse_loss(model(X), y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
with torch.no_grad():
    print("val_mse=%.3f" % torch.nn.functional.mse_loss(model(X), y).item())
"""


def _run(argv: list[str], cwd: Path, progress: Path | None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_PROGRESS, ENV_ROOT, "PYTHONPATH")}
    if progress is not None:
        env = job_env(env, str(progress))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ the hook
def test_torch_training_reports_every_stage_in_order_and_leaves_stdout_alone(tmp_path: Path) -> None:
    script = _script(tmp_path, "train.py", TINY_TRAIN)
    hooked = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE)
    plain = _run([sys.executable, str(script)], tmp_path, None)
    assert hooked.returncode == 0, hooked.stderr
    assert hooked.stdout == plain.stdout
    assert hooked.stderr == plain.stderr

    progress = read_progress(tmp_path)
    assert progress.seen == ["started", "imports_done", "data_ready", "first_step", "training", "evaluating",
                             "clean_exit"]
    assert not any(e.get("inferred") for e in progress.events)
    by_stage = {e["stage"]: e for e in progress.events}
    assert by_stage["imports_done"]["via"] == "dataloader"
    assert by_stage["data_ready"]["via"] == "dataloader"
    assert by_stage["first_step"]["step"] == 1 and isinstance(by_stage["first_step"]["loss"], float)
    assert by_stage["training"]["step"] == 10
    assert by_stage["evaluating"]["via"] == "eval"
    steps = [e for e in progress.events if e["stage"] == "step"]
    assert steps and steps[-1]["step"] == 20 and steps[-1]["steps_per_s"] > 0
    assert progress.last_step == 20 and progress.loss is not None and progress.error is None
    times = [e["t"] for e in progress.events]
    assert times == sorted(times)

    # the metric itself is the log's business
    log_stage = stage_from_log(hooked.stdout, metric_found="acc=0.5" in hooked.stdout, exit_ok=True)
    assert log_stage == "clean_exit"
    assert best_stage(progress, stage_from_log(hooked.stdout, True, False), exit_ok=False) == "metric_reported"


def test_crash_after_data_reaches_data_ready_but_not_first_step(tmp_path: Path) -> None:
    script = _script(tmp_path, "crash.py", CRASH_AFTER_DATA)
    done = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE)
    assert done.returncode == 1 and "RuntimeError" in done.stderr
    progress = read_progress(tmp_path)
    assert progress.stage == "data_ready"
    assert "first_step" not in progress.seen and "clean_exit" not in progress.seen
    assert progress.error == "RuntimeError"


def test_forward_under_no_grad_after_training_is_evaluation_but_clipping_is_not(tmp_path: Path) -> None:
    script = _script(tmp_path, "reg.py", NO_LOADER_NO_EVAL_CALL)
    done = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE)
    assert done.returncode == 0, done.stderr
    progress = read_progress(tmp_path)
    by_stage = {e["stage"]: e for e in progress.events}
    assert by_stage["imports_done"]["via"] == "model"
    assert by_stage["data_ready"]["via"] == "forward"
    assert by_stage["evaluating"]["via"] == "no_grad_forward"
    assert by_stage["evaluating"]["step"] == 12  # not during the clipped steps
    assert progress.seen[-1] == "clean_exit"


COMPILED = """
import torch

torch.set_num_threads(1)
X, y = torch.randn(64, 4), torch.randn(64, 1)
model = torch.compile(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)),
                      backend="eager")
opt = torch.optim.SGD(model.parameters(), lr=1e-2)
for step in range(3):
    loss = torch.nn.functional.mse_loss(model(X), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    print("val_mse=%.3f" % torch.nn.functional.mse_loss(model(X), y).item())
"""


def test_torch_compile_sees_no_global_module_hooks(tmp_path: Path) -> None:
    """torch.compile warns on stderr (the user's log) about global module hooks: the hook must take them out."""
    script = _script(tmp_path, "compiled.py", COMPILED)
    done = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "global hooks" not in done.stderr
    progress = read_progress(tmp_path)
    assert progress.seen[-1] == "clean_exit" and progress.last_step == 3
    assert {e["stage"]: e for e in progress.events}["data_ready"].get("inferred") is True


@pytest.mark.skipif(not Path("/dev/nvidia0").exists(), reason="needs a CUDA device")
def test_cuda_loss_is_reported_without_waiting_for_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # the suite hides the machine's GPUs (conftest.py)
    script = _script(tmp_path, "gpu.py", TINY_TRAIN.replace("torch.manual_seed(0)", "torch.manual_seed(0)\n"
                     "torch.set_default_device('cuda')").replace("shuffle=True", "shuffle=False"))
    done = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE)
    assert done.returncode == 0, done.stderr
    progress = read_progress(tmp_path)
    assert progress.seen[-1] == "clean_exit" and progress.last_step == 20
    assert any("loss" in e for e in progress.events)


def test_cuda_loss_is_read_only_once_its_asynchronous_copy_has_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The logic of the CUDA path without a GPU: the hook never calls .item() on a device tensor (a sync)."""
    torch = pytest.importorskip("torch")
    from nightlab.sandbox.instrument import _nightlab_torch_hook as th

    class Event:
        done = False

        def record(self) -> None:
            pass

        def query(self) -> bool:
            return Event.done

    class CudaLoss:
        device = SimpleNamespace(type="cuda")

        def numel(self) -> int:
            return 1

        def detach(self) -> CudaLoss:
            return self

        def to(self, device: str, non_blocking: bool = False) -> object:
            assert device == "cpu" and non_blocking
            return torch.tensor(2.5)

        def item(self) -> float:
            raise AssertionError("would wait for the device")

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(th._T, "loss", CudaLoss())
    monkeypatch.setattr(th._T, "pending", None)
    assert th._loss_fields(1) == {}  # copy started, nothing to report yet
    assert th._loss_fields(2) == {}  # not landed: no wait, no value, no second copy
    Event.done = True
    assert th._loss_fields(3) == {"loss": 2.5, "loss_step": 1}
    assert th._T.pending is not None and th._T.pending[2] == 3  # the next copy is under way


def test_plain_python_children_report_but_only_the_first_process_exits_cleanly(tmp_path: Path) -> None:
    script = _script(tmp_path, "parent.py", """
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "print('child')"], check=True)
        print("parent")
    """)
    done = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE)
    assert done.stdout == "child\nparent\n"
    events = read_progress(tmp_path).events
    started = [e for e in events if e["stage"] == "started"]
    assert [e["root"] for e in started] == [True, False]
    assert [e["pid"] for e in events if e["stage"] == "clean_exit"] == [started[0]["pid"]]


@pytest.mark.parametrize("code, error", [("import sys; sys.exit(3)", None), ("1/0", "ZeroDivisionError")])
def test_failed_exit_is_not_clean(tmp_path: Path, code: str, error: str | None) -> None:
    done = _run([sys.executable, "-c", code], tmp_path, tmp_path / PROGRESS_FILE)
    assert done.returncode != 0
    progress = read_progress(tmp_path)
    assert progress.seen == ["started"] and progress.error == error


def test_non_python_command_gets_log_based_stages(tmp_path: Path) -> None:
    done = _run(["sh", "-c", "echo loss 1; echo acc=0.5"], tmp_path, tmp_path / PROGRESS_FILE)
    assert done.returncode == 0 and done.stdout == "loss 1\nacc=0.5\n"
    progress = read_progress(tmp_path)
    assert progress.stage == NO_STAGE and progress.events == []
    assert stage_from_log(done.stdout, metric_found=False, exit_ok=False) == "training"
    assert stage_from_log(done.stdout, metric_found=True, exit_ok=False) == "metric_reported"
    log_stage = stage_from_log(done.stdout, metric_found=True, exit_ok=True)
    assert best_stage(progress, log_stage, exit_ok=True) == "clean_exit"


def test_inactive_without_the_progress_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_PROGRESS}
    env["PYTHONPATH"] = hook_dir()
    code = "import sys; print(any(type(f).__name__ == '_TorchWatcher' for f in sys.meta_path), sys.exit.__module__)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.split() == ["False", "sys"]
    assert list(tmp_path.iterdir()) == []


def test_chains_to_the_sitecustomize_it_shadows(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("MARK = 'theirs'\n")
    alias = tmp_path / "alias"  # our folder a second time under another name: must not run twice
    alias.symlink_to(hook_dir())
    for active in (True, False):
        env = {k: v for k, v in os.environ.items() if k not in (ENV_PROGRESS, ENV_ROOT)}
        env["PYTHONPATH"] = os.pathsep.join([hook_dir(), str(alias), str(other)])
        if active:
            env[ENV_PROGRESS] = str(tmp_path / PROGRESS_FILE)
        done = subprocess.run([sys.executable, "-c", "import sitecustomize; print(sitecustomize.MARK)"], env=env,
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.stdout.strip() == "theirs", done.stderr
    assert read_progress(tmp_path).seen == ["started", "clean_exit"]


def test_an_unwritable_progress_file_never_hurts_the_job(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    done = _run([sys.executable, "-c", "print('fine')"], tmp_path, tmp_path / "dir")  # a directory: open fails
    assert done.returncode == 0 and done.stdout == "fine\n" and done.stderr == ""


@pytest.mark.parametrize("name", ["sitecustomize.py", "_nightlab_torch_hook.py"])
def test_hook_files_stay_python39_and_light(name: str) -> None:
    source = (Path(hook_dir()) / name).read_text()
    ast.parse(source, feature_version=(3, 9))
    top_level_imports = {a.name for n in ast.parse(source).body if isinstance(n, ast.Import) for a in n.names}
    assert top_level_imports <= {"os", "sys", "time", "functools"}


def test_job_env_prepends_the_hook_and_keeps_the_user_path() -> None:
    env = job_env({"PYTHONPATH": "/a:/b", ENV_ROOT: "1", "X": "y"}, "/run/progress.jsonl")
    assert env["PYTHONPATH"] == os.pathsep.join([hook_dir(), "/a", "/b"])
    assert env[ENV_PROGRESS] == "/run/progress.jsonl" and ENV_ROOT not in env and env["X"] == "y"
    assert job_env(env, "/p")["PYTHONPATH"] == env["PYTHONPATH"]  # idempotent
    assert set(STAGES) >= {"started", "clean_exit"}


# ------------------------------------------------------------------------------------------------ reading
def test_read_progress_skips_torn_and_foreign_lines(tmp_path: Path) -> None:
    (tmp_path / PROGRESS_FILE).write_text(
        '{"t": 1, "stage": "started", "pid": 1}\n'
        "garbage\n"
        '{"t": 2, "stage": "first_step", "pid": 1, "step": 1, "loss": 2.5}\n'
        '[1, 2]\n'
        '{"t": 3, "stage": "step", "pid": 1, "step": 40, "steps_per_s": 12.5}\n'
        '{"t": 4, "stage": "trai'
    )
    progress = read_progress(tmp_path)
    assert progress.seen == ["started", "first_step"] and progress.stage == "first_step"
    assert (progress.last_step, progress.steps_per_s, progress.loss) == (40, 12.5, 2.5)
    assert read_progress(tmp_path / "missing") == Progress()


def test_stage_from_log_fallbacks() -> None:
    assert stage_from_log("", False, False) == NO_STAGE
    assert stage_from_log("[nightlab: timeout after 5 s: stopping the job]\n", False, False) == NO_STAGE
    assert stage_from_log("loading...\n", False, False) == "started"
    for line in ("epoch   1  train_loss 3.4", "Epoch [1/10]", "step: 20", "iter 5 loss=nan", "train_loss=0.3"):
        assert stage_from_log(line, False, False) == "training", line
    assert stage_from_log("no numbers about the loss here", False, False) == "started"
    assert stage_from_log("", False, True) == "clean_exit"
    assert stage_from_log("[nightlab-stage] first_step\n[nightlab-stage] bogus\n", False, False) == "first_step"


def test_best_stage_trusts_the_exit_status_for_clean_exit() -> None:
    progress = Progress(stage="clean_exit", seen=["started", "imports_done", "clean_exit"])
    assert best_stage(progress, "started") == "clean_exit"
    assert best_stage(progress, "started", exit_ok=False) == "imports_done"
    assert best_stage(Progress(), "training", exit_ok=False) == "training"


# ------------------------------------------------------------------------------------------------ static markers
STATIC_PROJECT = '''\
"""A training script with a hand-written optimiser: nothing for the hook to see."""
from __future__ import annotations

import sys

from helpers import Loss, Optimizer


def validate(model):
    return 0.5


class Model:
    def eval(self):
        return self


def train(steps):
    model, opt = Model(), Optimizer()
    model.eval()  # before training: must not count as evaluation
    for epoch in range(2):
        for i in range(steps):
            loss = Loss()
            loss.backward()
            if i % 1 == 0:
                opt.step()
        print("epoch", epoch, "loss 0.1")
    return model


if __name__ == "__main__":
    m = train(int(sys.argv[1]))
    print("acc=%.2f" % validate(m))
'''

HELPERS = """\
class Loss:
    def backward(self):
        pass


class Optimizer:
    def step(self):
        pass
"""


def test_static_markers_in_a_copy_leave_the_source_tree_untouched(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(STATIC_PROJECT)
    (src / "helpers.py").write_text(HELPERS)
    (src / "data.csv").write_text("1,2\n")
    before = _tree_digest(src)
    dest = instrument_copy(src, ["train.py", "helpers.py", "data.csv"], tmp_path / "run" / "code")
    assert _tree_digest(src) == before
    assert (dest / "data.csv").read_text() == "1,2\n"
    assert "_nightlab_stage" in (dest / "train.py").read_text()

    done = subprocess.run([sys.executable, "train.py", "12"], cwd=dest, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stages_from_markers(done.stdout) == ["imports_done", "data_ready", "first_step", "training", "evaluating"]
    assert done.stdout.count("[nightlab-stage] first_step") == 1
    user_lines = [ln for ln in done.stdout.splitlines() if not ln.startswith("[nightlab-stage]")]
    assert user_lines == ["epoch 0 loss 0.1", "epoch 1 loss 0.1", "acc=0.50"]
    assert stage_from_log(done.stdout, metric_found=True, exit_ok=True) == "clean_exit"
    assert stage_from_log(done.stdout, metric_found=False, exit_ok=False) == "evaluating"


def test_static_refuses_to_overwrite_the_source(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    with pytest.raises(ValueError):
        instrument_copy(tmp_path, ["train.py"], tmp_path)
    with pytest.raises(ValueError):
        instrument_copy(tmp_path / "sub", ["../train.py"], tmp_path / "out")


@pytest.mark.parametrize("source", [
    "for x in range(3): opt.step()\n",  # one-line loop: no safe place inside
    "import os\n@decorate\ndef f():\n    for b in data:\n        loss.backward(); opt.step()\n",
    "'''doc'''\nfrom __future__ import annotations\nimport torch\r\nfor b in d:\r\n    opt.step()\r\n",
    "while True:\n    if x: opt.step()\n    else:\n        break\nevaluate()\n",
    "x = (\n  1,\n)\nfor i in y:\n    with ctx:\n        z = opt.step(\n            1)\n    test_model(x)\n",
    "import os\n\x0c\nfor i in range(2):\n    opt.step()\n",  # a form feed: a line for str.splitlines, not for ast
    "",
    "def broken(:\n",
])
def test_static_output_always_parses(source: str) -> None:
    out = instrument_source(source)
    if source.strip() and "broken" not in source:
        ast.parse(out)
        assert "_nightlab_stage" in out
    else:
        assert out == source


def test_static_future_import_stays_first() -> None:
    out = instrument_source('"""doc"""\nfrom __future__ import annotations\nimport os\n')
    body = ast.parse(out).body
    assert isinstance(body[1], ast.ImportFrom) and body[1].module == "__future__"
    assert isinstance(body[2], ast.FunctionDef)


def test_static_copy_of_a_real_task_still_runs(tmp_path: Path) -> None:
    task = Path("/work/shared/tasks/digits-mlp")
    if not task.exists():
        pytest.skip("task suite not available")
    dest = instrument_copy(task, ["train.py"], tmp_path / "code")
    done = subprocess.run([sys.executable, "train.py"], cwd=dest, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert stages_from_markers(done.stdout)[-1] == "evaluating" and "test_accuracy=" in done.stdout


def test_read_progress_keeps_only_the_last_step_reports(tmp_path: Path) -> None:
    lines = ['{"t": 0, "stage": "started", "pid": 1}']
    lines += [f'{{"t": {i}, "stage": "step", "pid": 1, "step": {i}, "steps_per_s": 1.0}}' for i in range(1, 5001)]
    lines.append('{"t": 5001, "stage": "evaluating", "pid": 1, "step": 5000}')
    (tmp_path / PROGRESS_FILE).write_text("\n".join(lines) + "\n")
    progress = read_progress(tmp_path, max_step_events=100)
    steps = [e for e in progress.events if e["stage"] == "step"]
    assert len(steps) == 100 and steps[0]["step"] == 4901 and progress.last_step == 5000
    assert progress.seen == ["started", "evaluating"] and progress.events[0]["stage"] == "started"


SLOW_START = """
import time

import torch

torch.set_num_threads(1)
time.sleep(1.5)  # start-up: the data being read
X, y = torch.randn(64, 4), torch.randn(64, 1)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=1e-2)
for step in range(25):
    loss = torch.nn.functional.mse_loss(model(X), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    time.sleep(0.1)  # 2.5 s of training
time.sleep(1.0)  # a final evaluation
print("val_mse=%.3f" % loss.item())
"""


def test_the_hook_times_the_training_apart_from_what_does_not_grow_with_it(tmp_path: Path) -> None:
    """The seconds from the first optimizer step to the last are the training (the report at exit says how long
    before it the last step was: the evaluation's second is not counted as training); the rest of the run —
    start-up before it, evaluation after — is what a longer training does not lengthen (agent/analysis.
    fixed_seconds, read by the cost model)."""
    from nightlab.agent.analysis import fixed_seconds

    script = _script(tmp_path, "slow.py", SLOW_START)
    t0 = time.monotonic()
    done = _run([sys.executable, str(script)], tmp_path, tmp_path / PROGRESS_FILE)
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    progress = read_progress(tmp_path)
    # 24 sleeps of 0.1 s between the first step and the last (a loaded machine stretches them, never shrinks them)
    assert progress.training_s is not None and 2.3 <= progress.training_s <= 3.6, progress.training_s
    fixed = fixed_seconds(seconds, progress)
    assert fixed is not None and 2.5 <= fixed <= seconds - 2.3, (fixed, seconds)  # 1.5 s + 1 s at least
    # no step seen (not a torch job, or a replayed one): nothing timed
    assert Progress().training_s is None and fixed_seconds(seconds, Progress()) is None
