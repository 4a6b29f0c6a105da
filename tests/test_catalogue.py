"""The fix catalogue, entry by entry, on real scripts that really fail on the installed versions.

Every entry of `catalogue.CATALOGUE` has a case in tests/catalogue_cases/<case>/: the script is run as it is and must
fail with that entry's error; the failure goes through the builtin policy's `fix` (the catalogue as the engine uses
it), the proposed edits are applied with the engine's own edit validation, and the fixed script must run and print
its metric. A few cases also go through the real engine (`_try_fix`): the run, the fix experiment and its run.
"""

from __future__ import annotations

import math
import random
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent import diagnose, metrics
from nightlab.agent.config import load_config
from nightlab.agent.edits import apply_edits
from nightlab.agent.engine import Engine, EngineOptions
from nightlab.agent.policy import catalogue
from nightlab.agent.policy.base import Abandon, ExperimentView, PolicyContext, Proposal
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.knobs import rewrite as rewrite_knob
from nightlab.agent.store import Experiment

from helpers import git, make_repo, write_config

CASES = Path(__file__).parent / "catalogue_cases"
# The cases reproduce failures of a machine without a GPU: on one with GPUs the job is shown none, as nightlab's CPU
# slots do (CUDA_VISIBLE_DEVICES=""), so `.cuda()` fails there too.
ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": ""}


@dataclass(frozen=True)
class Case:
    """How a case fails here and what the fix must achieve."""

    error: str  # what the failing run prints on the installed versions ('' when it is a timeout)
    error_with_gpus: str = ""  # its wording on a machine whose GPUs the job is not shown, where that differs
    # plain | small_shm (1 MB /dev/shm) | read_only (all but the repository, as in a job) | memory_cap | timeout
    runner: str = "plain"
    gpus: int = 0  # GPUs the job is said to get
    widen: tuple[str, int] | None = None  # a width change nightlab made before this run (knob, new value)
    abandon: str = ""  # the branch must stop with this in the reason instead of a fix
    # APIs that still work on the installed versions (with a warning): they are removed from the job's interpreter
    # (`_removal_site`), so the script fails as it would on a release without them, and its fix must not use them
    removed: tuple[str, ...] = ()
    expect_in_fix: tuple[str, ...] = field(default_factory=tuple)  # text the fixed file must contain
    env: tuple[tuple[str, str], ...] = ()  # what the machine lacks, said through the environment (CXX nowhere)


SPECS: dict[str, Case] = {
    "torch_load_weights_only": Case("Weights only load failed", expect_in_fix=("weights_only=False",)),
    "cuda_checkpoint_on_cpu": Case("Attempting to deserialize object on a CUDA device",
                                   expect_in_fix=('map_location=None if torch.cuda.is_available() else "cpu"',)),
    "cuda_on_cpu": Case("Found no NVIDIA driver", error_with_gpus="No CUDA GPUs are available", expect_in_fix=(
        '"device": "cuda" if torch.cuda.is_available() else "cpu"', "Net().to(_DEVICE)",
        ".to(_DEVICE, non_blocking=True)", "if torch.cuda.is_available():\n                torch.cuda.synchronize()")),
    "dataloader_workers": Case("unable to allocate shared memory", runner="small_shm",
                               expect_in_fix=("num_workers=0)",)),
    "numpy_removed_alias": Case("module 'numpy' has no attribute 'float'", expect_in_fix=(
        ".astype(float)", "np.prod(X.shape[1:])", "dtype=np.float64", "best = -np.inf")),
    "pandas_append": Case("'DataFrame' object has no attribute 'append'",
                          expect_in_fix=("history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)",)),
    "torch_cuda_amp": Case("No module named 'torch.cuda.amp'", removed=("torch.cuda.amp",),
                           expect_in_fix=('from torch.amp import GradScaler', 'GradScaler("cuda", enabled=',
                                          'torch.amp.autocast("cuda", enabled=')),
    "functional_sigmoid_tanh": Case(
        "AttributeError: module 'torch.nn.functional' has no attribute 'tanh'",
        removed=("torch.nn.functional.sigmoid", "torch.nn.functional.tanh"),
        expect_in_fix=("torch.tanh(self.a(x)) * torch.sigmoid(self.g(x))",)),
    "autograd_variable": Case(
        "ImportError: cannot import name 'Variable' from 'torch.autograd'", removed=("torch.autograd.Variable",),
        expect_in_fix=("w = torch.zeros(3, 1).requires_grad_()", "x, y = X, Y", "test = X\n")),
    "zero_dim_index": Case("invalid index of a 0-dim tensor", expect_in_fix=("running += loss.item()",
                                                                             "(epoch, loss.item())")),
    "sklearn_renamed": Case("unexpected keyword argument 'sparse'",
                            expect_in_fix=("OneHotEncoder(sparse_output=False",)),
    "pandas_removed": Case("unexpected keyword argument 'delim_whitespace'", expect_in_fix=(
        r'pd.read_csv("table.txt", sep=r"\s+", on_bad_lines="skip")', "df = df.ffill()",
        'df.drop(columns="label").map(float)')),
    "torch_six": Case("No module named 'torch._six'", expect_in_fix=("from torch import inf\n",)),
    "scheduler_verbose": Case("unexpected keyword argument 'verbose'", expect_in_fix=(
        "StepLR(opt, step_size=20, gamma=0.5)", 'ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=5)')),
    "transformers_renamed": Case("cannot import name 'AdamW' from 'transformers'", expect_in_fix=(
        'eval_strategy="epoch"', "use_cpu=True", "warmup_steps=0.1", "processing_class=tokenizer",
        "from torch.optim import AdamW")),
    "dataparallel_prefix": Case('Unexpected key(s) in state_dict: "module.', expect_in_fix=(
        'load_state_dict({k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()})',)),
    "resized_model_checkpoint": Case("size mismatch for encoder.0.weight", widen=("HIDDEN", 64),
                                     expect_in_fix=("_compatible_state(model, torch.load(",)),
    "linear_in_features": Case("mat1 and mat2 shapes cannot be multiplied", expect_in_fix=("nn.Linear(64, 32)",)),
    "missing_package": Case("No module named 'comet_ml'",
                            abandon="comet_ml is not installed (imported at train.py:2: import comet_ml), and nightlab "
                                    "cannot install packages"),
    "removed_dataset": Case("`load_boston` has been removed from scikit-learn since version 1.2",
                            abandon="scikit-learn 1.2 removed the Boston housing dataset (load_boston): the dataset "
                                    "itself is gone from the installed library (at train.py:2"),
    "outside_write": Case("Read-only file system", runner="read_only",
                          expect_in_fix=('os.path.expanduser("nightlab-case-outputs/run1")',)),
    "network_access": Case("URLError", abandon="could not reach data.nightlab-test.invalid (at train.py:8"),
    "out_of_memory": Case("can't allocate memory", runner="memory_cap", expect_in_fix=(
        '"batch_size": 1024', "GRAD_ACCUM_STEPS = 2", "(loss / GRAD_ACCUM_STEPS).backward()")),
    "nan_loss": Case("accuracy=nan", expect_in_fix=("LR = 0.5",)),
    "cpu_pinned_gpu_job": Case("", runner="timeout", gpus=1,
                               expect_in_fix=('default="cuda" if torch.cuda.is_available() else "cpu"',)),
    "torch_compile": Case("No working C++ compiler found", env=(("CXX", "/nonexistent/g++"),), expect_in_fix=(
        'print("compiling the model... (takes a ~minute)")\nopt = ', "\n\ndef loss_fn(logits, y):")),
    "timeout": Case("", runner="timeout", expect_in_fix=("EPOCHS = 2000",)),
}


# ----------------------------------------------------------------------------------------------- running


_TRACKED: dict[Path, list[str]] = {}  # what each case repository ships, as committed (before any run)


def _repo(case: str, tmp_path: Path) -> Path:
    repo = tmp_path / case
    shutil.copytree(CASES / case, repo)
    fixture = repo / "fixture.py"
    if fixture.exists():  # files the repository ships (a checkpoint): made here, committed, the maker is not
        subprocess.run([sys.executable, "fixture.py"], cwd=repo, env=ENV, check=True, capture_output=True)
        fixture.unlink()
    _TRACKED[repo] = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    return repo


def _address_space_cap() -> int:
    """What torch and the data need (measured in a probe process) plus 800 MB: the case's batch of 2048 needs
    about 1 GB of activations, half of it about 0.5 GB."""
    probe = "import torch\ntorch.set_num_threads(1)\nx = torch.randn(8192, 8)\n" \
            "print([l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1])"
    out = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, check=True)
    return (int(out.stdout.strip()) + 800 * 1024) * 1024


def _bwrap(repo: Path, small_shm: bool) -> list[str]:
    """A read-only file system but the repository (as a job's), with a 1 MB /dev/shm where `small_shm`."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed: the read-only sandbox cannot be built")
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"bubblewrap cannot create namespaces here: {probe.stderr.decode().strip()}")
    return [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", str(repo), str(repo),
            "--chdir", str(repo), *(["--size", str(1 << 20), "--tmpfs", "/dev/shm"] if small_shm else [])]


_REMOVAL_SITE = """\
import importlib, importlib.abc, sys, types

_gone = []


class _Removed(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == g or name.startswith(g + ".") for g in _gone):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for own_user in %r:
    importlib.import_module(own_user)
for dotted in %r:
    parent, _, attr = dotted.rpartition(".")
    owner = importlib.import_module(parent)
    if isinstance(getattr(owner, attr), types.ModuleType):
        _gone.append(dotted)
        for mod in [m for m in sys.modules if m == dotted or m.startswith(dotted + ".")]:
            del sys.modules[mod]
    delattr(owner, attr)
sys.meta_path.insert(0, _Removed())
"""


def _removal_site(where: Path, removed: tuple[str, ...]) -> str:
    """A folder whose sitecustomize.py removes these names (functions, classes, modules) from the libraries before
    the script runs: the interpreter then behaves as a release without them does (AttributeError, ImportError,
    ModuleNotFoundError raised by Python itself, from the script's own line). A release that removes a name has
    updated its own users of it: torch's compiler, which an optimizer imports and which still reads torch.cuda.amp,
    is imported before the removal."""
    site = where / "removed-apis"
    site.mkdir(exist_ok=True)
    own_users = ["torch._dynamo"] if any(r.startswith("torch.") for r in removed) else []
    (site / "sitecustomize.py").write_text(_REMOVAL_SITE % (own_users, list(removed)))
    return str(site)


def run(repo: Path, case: Case, limit: float | None = None) -> tuple[int | None, str, str]:
    """(exit code, log, runner state) of `python [prepare.py &&] train.py` under the case's conditions."""
    argv = [sys.executable, "train.py"]
    env = {**ENV, "PYTHONPATH": _removal_site(repo.parent, case.removed)} if case.removed else {**ENV}
    env.update(case.env)
    preexec = None
    if case.runner in ("small_shm", "read_only"):
        argv = [*_bwrap(repo, case.runner == "small_shm"), *argv]
    elif case.runner == "memory_cap":
        cap = _address_space_cap()
        preexec = lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if (repo / "prepare.py").exists():
        subprocess.run([sys.executable, "prepare.py"], cwd=repo, env=env, check=True, capture_output=True)
    try:
        p = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, preexec_fn=preexec,
                           timeout=limit or 300)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return None, out, "timed_out"
    return p.returncode, p.stdout + p.stderr, "succeeded" if p.returncode == 0 else "failed"


def shows_error(case: Case, log: str) -> bool:
    """The case's failure is in the log, in this machine's wording of it."""
    return case.error in log or bool(case.error_with_gpus and case.error_with_gpus in log)


def accuracy(log: str) -> float | None:
    return metrics.parse_metric(log, "accuracy").value


# ----------------------------------------------------------------------------------------------- the policy


def _view(id: int, parent: int | None, result: str, log: str = "", failure: str | None = None,
          knobs: dict[str, Any] | None = None, kind: str = "hyperparameter") -> ExperimentView:
    return ExperimentView(id=id, parent_id=parent, title=f"exp {id}", kind=kind, status=result, run_result=result,
                          metric=0.5 if result == "succeeded" else None, curve=[], loss_curve=[],
                          knobs=dict(knobs or {}), failure_class=failure, diagnosis=None, log_tail=log[-4000:],
                          seed=0, seconds=1.0)


def _ctx(files: dict[int, dict[str, str]], views: list[ExperimentView], tracked: list[str],
         gpus: int = 0) -> PolicyContext:
    return PolicyContext(
        root="/nonexistent", metric="accuracy", goal="maximize", editable=sorted(files[1]), protected=[],
        experiments=views, best_id=None, baseline_id=1, noise_floor=0.0, brief="", timeout_s=600.0, runs_left=10,
        read_file=lambda i, p: files.get(i if i is not None else 1, {}).get(p, ""), rng=random.Random(0),
        tracked=tracked, gpus_per_job=gpus)


def _failure(rc: int | None, log: str, state: str) -> diagnose.Failure:
    return diagnose.classify_failure(log, rc, state, "exceeded the timeout" if state == "timed_out" else "",
                                     metrics.parse_metric(log, "accuracy").error)


def _text_files(repo: Path) -> dict[str, str]:
    return {p.relative_to(repo).as_posix(): p.read_text() for p in repo.rglob("*.py")}


def _fix(repo: Path, case: Case, rc: int | None, log: str, state: str) -> tuple[Proposal, dict[str, str]]:
    """The builtin policy's fix for the failed run; the files after its edits (validated as the engine does)."""
    files = _text_files(repo)
    tracked = _TRACKED[repo]
    policy = BuiltinPolicy()
    failure = _failure(rc, log, state)
    knobs = {k: v.value for k, v in policy.knobs_in(files).items()}
    views = [_view(1, None, state, log, failure.cls, knobs, "baseline")]
    tree = {1: files}
    if case.widen:  # the run that failed is nightlab's own widening of a baseline that ran
        committed = {k: v.value for k, v in policy.knobs_in({"train.py": (CASES / repo.name / "train.py").read_text()})
                     .items()}
        views = [_view(1, None, "succeeded", "", None, committed, "baseline"),
                 _view(2, 1, state, log, failure.cls, knobs)]
        tree[2] = files
    prop = policy.fix(_ctx(tree, views, tracked, case.gpus), views[-1])
    assert prop is not None, f"no fix for {failure.cls}: {failure.summary}"
    assert prop.kind == "fix" and prop.title and prop.rationale and prop.diagnosis
    return prop, {**files, **apply_edits(prop.edits, lambda p: files.get(p), list(files), [])}


def _widen(repo: Path, knob: str, value: int) -> None:
    path = repo / "train.py"
    found = BuiltinPolicy().knobs_in({"train.py": path.read_text()})
    path.write_text(rewrite_knob(path.read_text(), found[knob].knob, value))


# ----------------------------------------------------------------------------------------------- tests


def test_every_entry_has_a_case_and_a_spec() -> None:
    names = [e.name for e in catalogue.CATALOGUE]
    assert len(set(names)) == len(names)
    for e in catalogue.CATALOGUE:
        assert (CASES / e.case / "train.py").is_file(), f"entry {e.name} has no test case folder"
        assert e.case in SPECS, f"entry {e.name} has no spec in this test"
        assert e.error and e.remedy


@pytest.mark.parametrize("name", [e.case for e in catalogue.CATALOGUE])
def test_entry_fixes_its_real_failure(name: str, tmp_path: Path) -> None:
    case = SPECS[name]
    repo = _repo(name, tmp_path)
    if case.widen:
        rc, log, state = run(repo, case)
        assert rc == 0, log[-2000:]  # the committed configuration loads its checkpoint
        _widen(repo, *case.widen)
    limit = 2.0 if case.runner == "timeout" else None
    rc, log, state = run(repo, case, limit)
    assert state != "succeeded" or accuracy(log) is None or not math.isfinite(accuracy(log) or 0.0), log[-2000:]
    assert shows_error(case, log), log[-3000:]
    if case.abandon:
        with pytest.raises(Abandon) as why:
            _fix(repo, case, rc, log, state)
        assert case.abandon in str(why.value), str(why.value)
        return
    prop, fixed = _fix(repo, case, rc, log, state)
    for want in case.expect_in_fix:
        assert any(want in t for t in fixed.values()), f"{want!r} not in the fix:\n{prop.edits}"
    for path, text in fixed.items():
        (repo / path).write_text(text)
    rc, log, state = run(repo, case)
    assert rc == 0, f"{prop.title}\n{log[-3000:]}"
    value = accuracy(log)
    assert value is not None and math.isfinite(value), log[-2000:]


def test_torch_load_of_a_file_of_unknown_origin_is_not_trusted(tmp_path: Path) -> None:
    """The same failure, but the file comes from outside (a path on the command line, neither shipped nor written
    by the repository): no weights_only=False, the branch stops with the reason."""
    repo = _repo("torch_load_weights_only", tmp_path)
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        '    ap.add_argument("--epochs", type=int, default=30)',
        '    ap.add_argument("--epochs", type=int, default=30)\n    ap.add_argument("--data", default=CACHE)').replace(
        "x, y = load(CACHE)", "x, y = load(args.data)").replace("    prepare()\n", ""))
    (repo / "prepare.py").unlink()
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("from prepare import CACHE, main as prepare",
                                                                           'CACHE = "/srv/shared/cache.pt"'))
    fake = Case("Weights only load failed")
    line = (repo / "train.py").read_text().splitlines().index("    blob = torch.load(path)") + 1
    log = (f'Traceback (most recent call last):\n  File "{repo}/train.py", line {line}, in load\n'
           '    blob = torch.load(path)\n_pickle.UnpicklingError: Weights only load failed. ...\n'
           "\tWeightsUnpickler error: Unsupported global: GLOBAL numpy._core.multiarray._reconstruct was not an "
           "allowed global by default.\n")
    with pytest.raises(Abandon) as why:
        _fix(repo, fake, 1, log, "failed")
    text = str(why.value)
    assert "cannot tell that the repository ships or writes /srv/shared/cache.pt" in text
    assert "numpy._core.multiarray._reconstruct" in text


def test_a_checkpoint_that_does_not_fit_without_a_resize_is_reported_not_patched(tmp_path: Path) -> None:
    repo = _repo("resized_model_checkpoint", tmp_path)
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("HIDDEN = 16", "HIDDEN = 32"))
    case = Case("size mismatch")
    rc, log, state = run(repo, case)
    assert rc != 0 and "size mismatch for encoder.0.weight" in log
    with pytest.raises(Abandon, match="nightlab did not change the model's shape"):
        _fix(repo, case, rc, log, state)


def test_the_llm_prompt_carries_the_catalogues_diagnosis(tmp_path: Path) -> None:
    from nightlab.agent.config import LLMConfig
    from nightlab.agent.policy.llm import LLMPolicy

    repo = _repo("cuda_on_cpu", tmp_path)
    rc, log, state = run(repo, SPECS["cuda_on_cpu"])
    failure = _failure(rc, log, state)
    files = _text_files(repo)
    failed = _view(1, None, state, log, failure.cls, kind="baseline")
    prompt = LLMPolicy(LLMConfig(model="openai/test")).user_prompt(_ctx({1: files}, [failed], sorted(files)), failed)
    assert "nightlab's fix catalogue recognises this failure" in prompt
    assert "cuda_on_cpu: the code asks for a CUDA GPU" in prompt
    assert "nightlab's own fix would be: choose the device at run time" in prompt


# ----------------------------------------------------------------------------------------------- the engine


def _engine_project(case: str, tmp_path: Path) -> Path:
    repo = _repo(case, tmp_path)
    if (repo / "prepare.py").exists():
        command = f"{sys.executable} prepare.py && {sys.executable} train.py"
    else:
        command = f"{sys.executable} train.py"
    make_repo(repo, {})
    write_config(repo, command=command, editable=["*.py"], timeout=120)
    cfg = (repo / "nightlab.toml").read_text().replace('name = "acc"', 'name = "accuracy"')
    (repo / "nightlab.toml").write_text(cfg)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nightlab config")
    return repo


@pytest.mark.parametrize("name", ["torch_load_weights_only", "cuda_on_cpu", "dataparallel_prefix"])
def test_the_engine_fixes_the_failing_baseline(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU-only machine, also where the tests run on one with GPUs
    repo = _engine_project(name, tmp_path)
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=2),
                 policy=BuiltinPolicy())
    eng.run()
    exps = eng.store.experiments()
    base = next(e for e in exps if e.kind == "baseline")
    assert base.run_result == "failed" and shows_error(SPECS[name], base.log_tail or "")
    fix = next(e for e in exps if e.parent_id == base.id)
    assert fix.kind == "fix" and fix.run_result == "succeeded", fix.log_tail
    assert fix.metric is not None and fix.status == "kept"
    assert (repo / "train.py").read_text() == (CASES / name / "train.py").read_text()  # the user's file untouched


def _stopped_baseline(case: str, tmp_path: Path) -> tuple[Engine, Experiment, list[str]]:
    """The engine on a case whose baseline no edit can fix: the failed baseline (no fix was tried on it) and the
    reasons the branch was stopped with."""
    repo = _engine_project(case, tmp_path)
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=2),
                 policy=BuiltinPolicy())
    eng.run()
    base = next(e for e in eng.store.experiments() if e.kind == "baseline")
    assert base.run_result == "failed"
    assert not [e for e in eng.store.experiments() if e.parent_id == base.id]
    return eng, base, [ev["message"] for ev in eng.store.events() if ev["kind"] == "abandon"]


def test_the_engine_stops_a_branch_that_needs_a_package_with_the_reason(tmp_path: Path) -> None:
    _, base, stopped = _stopped_baseline("missing_package", tmp_path)
    assert base.failure_class == "import_error"
    assert base.error and "comet_ml is not installed (imported at train.py:2: import comet_ml)" in base.error
    assert stopped and "cannot install packages" in stopped[-1]


def test_the_engine_stops_a_branch_that_downloads_at_run_time_with_the_way_past_it(tmp_path: Path) -> None:
    """A baseline that downloads its data: the failure says which host and how to get past it (fetch the files once
    outside nightlab, or sandbox.network = true), and no fix is tried."""
    eng, base, stopped = _stopped_baseline("network_access", tmp_path)
    assert base.failure_class == "network"
    failed = [ev["message"] for ev in eng.store.events() if ev["kind"] == "failed"]
    assert failed and "could not reach data.nightlab-test.invalid" in failed[0]
    assert "sandbox.network = true" in failed[0]
    assert stopped and "No code change can download them" in stopped[-1]


# ----------------------------------------------------------------------------------------------- the edits themselves


def test_repairs_touch_only_the_lines_they_fix() -> None:
    """Format-preserving: the numpy repair changes the six lines that use removed aliases, character for character
    elsewhere (the comment, spacing and quotes stay)."""
    text = (CASES / "numpy_removed_alias" / "train.py").read_text()
    site = catalogue.Site(files={"train.py": text})
    sym = catalogue.symptoms("attribute_error", "AttributeError: module 'numpy' has no attribute 'float'.\n", "failed",
                             ["train.py"])
    (_entry, _match, fix), *_ = list(catalogue.repairs(sym, site))
    assert isinstance(fix, catalogue.Fix)
    old, new = text.splitlines(), fix.texts["train.py"].splitlines()
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert [a for a, _ in changed] == [ln for ln in old if any(
        f"np.{x}" in ln for x in ("float", "int)", "product", "Inf"))]
    assert ("best = -np.Inf", "best = -np.inf") in changed


def test_a_second_out_of_memory_doubles_the_accumulation_and_an_unclear_loop_only_halves() -> None:
    from nightlab.agent.policy.catalogue import resources

    text = (CASES / "out_of_memory" / "train.py").read_text()
    once = resources.grad_accumulation(text, "train.py", 2)
    assert once is not None and once.count("_micro_step % GRAD_ACCUM_STEPS == 0") == 2
    compile(once, "train.py", "exec")
    doubled = resources._double_accumulation(once, "train.py")
    assert doubled is not None and doubled[1] == 4 and "GRAD_ACCUM_STEPS = 4" in doubled[0]
    # two backward passes in the loop (two losses): which one to scale is not certain
    two = text.replace("            loss.backward()\n", "            loss.backward()\n            loss.backward()\n")
    assert resources.grad_accumulation(two, "train.py", 2) is None
    match = catalogue.Match("out of memory")
    change = catalogue.KnobChange("CONFIG.batch_size", 2048, 1024)
    site = catalogue.Site(files={"train.py": two}, scale=lambda kind, f: change if kind == "batch_size" else None)
    fixes = list(resources.repair_oom(match, site))
    assert len(fixes) == 1 and isinstance(fixes[0], catalogue.Fix) and not fixes[0].texts
    assert fixes[0].changes == {"CONFIG.batch_size": 1024} and "effective batch is halved" in fixes[0].rationale


def test_torch_compile_is_dropped_in_every_shape_code_writes_it() -> None:
    """The compile call however it is imported, a lone `if args.compile:` with it, a decorator with arguments,
    Hugging Face's torch_compile=True; a repository with no compile call to drop stops the branch, saying why."""
    from nightlab.agent.policy.catalogue import compiler

    match = catalogue.Match("torch.compile could not build the model on this machine")

    def fixed(text: str) -> str:
        (fix,) = list(compiler.repair_compile(match, catalogue.Site(files={"train.py": text})))
        assert isinstance(fix, catalogue.Fix), fix
        new = fix.texts["train.py"]
        compile(new, "train.py", "exec")
        return new

    lone = ("import torch\nmodel = torch.nn.Linear(2, 2)\nif args.compile:\n"
            "    model = torch.compile(model, mode='max-autotune')\nprint(1)\n")
    assert fixed(lone) == "import torch\nmodel = torch.nn.Linear(2, 2)\nprint(1)\n"
    aliased = ("import torch as th\nfrom torch import compile as tc\nm = th.nn.Linear(2, 2)\ncm = th.compile(m)\n"
               "fast = tc(m, dynamic=True)\n\n\n@th.compile(fullgraph=True)\ndef f(x):\n    return x\n")
    new = fixed(aliased)
    assert "cm = m\n" in new and "fast = m\n" in new and "@th.compile" not in new and "def f(x):" in new
    hf = "from transformers import TrainingArguments\nargs = TrainingArguments(output_dir='o', torch_compile=True)\n"
    assert "torch_compile=False)" in fixed(hf)
    keras = "model.compile(optimizer='adam', loss='mse')\n"  # Keras' compile is no torch.compile
    (none,) = list(compiler.repair_compile(match, catalogue.Site(files={"train.py": keras})))
    assert isinstance(none, catalogue.NoFix) and "no torch.compile call" in none.reason
    sym = catalogue.symptoms("runtime_error", "RuntimeError: Dynamo is not supported on Python 3.12+\n", "failed",
                             ["train.py"])
    assert compiler.recognise_compile(sym) is not None


def test_transformers_removed_names_are_rewritten_in_place_and_only_known_ones_are_recognised() -> None:
    from nightlab.agent.policy.catalogue import hf_params

    sym = catalogue.symptoms("type_error", "TypeError: Seq2SeqTrainer.__init__() got an unexpected keyword argument "
                                           "'tokenizer'\n", "failed", ["train.py"])
    assert hf_params.recognise_transformers(sym) is not None
    unknown = catalogue.symptoms("type_error", "TypeError: TrainingArguments.__init__() got an unexpected keyword "
                                               "argument 'my_typo'\n", "failed", ["train.py"])
    assert hf_params.recognise_transformers(unknown) is None
    text = ("from transformers import Seq2SeqTrainingArguments\n"
            "args = Seq2SeqTrainingArguments(output_dir='o', group_by_length=True, include_inputs_for_metrics=False,\n"
            "                                per_gpu_train_batch_size=8, warmup_ratio=0.1, warmup_steps=100)\n")
    (fix,) = list(hf_params.repair_transformers(catalogue.Match("x"), catalogue.Site(files={"train.py": text})))
    assert isinstance(fix, catalogue.Fix)
    new = fix.texts["train.py"]
    assert "train_sampling_strategy=\"group_by_length\"" in new and "include" not in new
    assert "per_device_train_batch_size=8" in new and "warmup_ratio" not in new and "warmup_steps=100" in new
    (none,) = list(hf_params.repair_transformers(catalogue.Match("x"), catalogue.Site(
        files={"train.py": "from transformers import TrainingArguments\nargs = TrainingArguments(**cfg)\n"})))
    assert isinstance(none, catalogue.NoFix)


def test_pandas_removals_are_rewritten_and_another_librarys_pad_is_left_alone() -> None:
    from nightlab.agent.policy.catalogue import pandas_removed

    text = ('import numpy as np\nimport pandas as pd\n'
            's = pd.read_csv("y.csv", squeeze=True)\nb = df.fillna(method="bfill", limit=2)\n'
            'p = df.pad()\nx = np.pad(a, 1)\nt = df.swapaxes(0, 1)\ndf.to_csv("o.csv", line_terminator="\\n")\n')
    match = pandas_removed.recognise_pandas_removed(catalogue.symptoms(
        "attribute_error", "AttributeError: 'DataFrame' object has no attribute 'pad'\n", "failed", ["train.py"]))
    assert match is not None
    (fix,) = list(pandas_removed.repair_pandas_removed(match, catalogue.Site(files={"train.py": text})))
    assert isinstance(fix, catalogue.Fix)
    new = fix.texts["train.py"]
    for want in ('pd.read_csv("y.csv").squeeze("columns")', "df.bfill(limit=2)", "p = df.ffill()",
                 "x = np.pad(a, 1)", "t = df.swapaxes(0, 1)", 'lineterminator="\\n"'):
        assert want in new, want


def test_pandas_methods_removed_without_a_namesake_are_rewritten_at_the_traceback_line_to_the_same_values() -> None:
    """`.mad()`, `.bool()` and `.ravel()` are rewritten into the expressions that compute what they did, only on the
    line the traceback points at (torch's `mask.bool()` two lines below stays); `.is_monotonic` everywhere. The
    rewritten script runs on the installed pandas and gives the values pandas 1.x gave."""
    import numpy as np

    from nightlab.agent.policy.catalogue import pandas_removed

    text = ('import pandas as pd\n'
            's = pd.Series([1.0, 2.0, 4.0, 9.0])\n'
            'spread = s.mad()\n'
            'flag = pd.Series([True]).bool()\n'
            'flat = s.ravel()\n'
            'rising = s.is_monotonic\n'
            'mask = torch_like.bool()\n')
    fixed = {}
    for line, method in ((3, "mad"), (4, "bool"), (5, "ravel")):
        match = pandas_removed.recognise_pandas_removed(catalogue.symptoms(
            "attribute_error", f"AttributeError: 'Series' object has no attribute '{method}'\n", "failed",
            ["train.py"]))
        assert match is not None and match.facts["method"] == method
        site = catalogue.Site(files={"train.py": text}, frames=(catalogue.Frame("train.py", line),))
        (fix,) = list(pandas_removed.repair_pandas_removed(match, site))
        assert isinstance(fix, catalogue.Fix)
        new = fix.texts["train.py"]
        assert "mask = torch_like.bool()" in new and "rising = s.is_monotonic_increasing" in new
        fixed[method] = new.splitlines()[line - 1]
    assert fixed == {"mad": "spread = (s - s.mean()).abs().mean()", "bool": "flag = bool(pd.Series([True]).squeeze())",
                     "ravel": "flat = s.to_numpy().ravel()"}
    scope: dict[str, object] = {}
    exec("import pandas as pd\ns = pd.Series([1.0, 2.0, 4.0, 9.0])\n" + "\n".join(fixed.values())
         + "\nrising = s.is_monotonic_increasing\n", scope)
    x = np.array([1.0, 2.0, 4.0, 9.0])
    assert scope["spread"] == np.mean(np.abs(x - x.mean())) and scope["flag"] is True and scope["rising"] is True
    assert list(scope["flat"]) == list(x)  # type: ignore[call-overload]
    elsewhere = catalogue.Site(files={"train.py": text}, frames=(catalogue.Frame("train.py", 2),))
    match = pandas_removed.recognise_pandas_removed(catalogue.symptoms(
        "attribute_error", "AttributeError: 'Series' object has no attribute 'bool'\n", "failed", ["train.py"]))
    assert match is not None
    (only_monotonic,) = list(pandas_removed.repair_pandas_removed(match, elsewhere))
    assert isinstance(only_monotonic, catalogue.Fix)
    assert only_monotonic.texts["train.py"] == text.replace("s.is_monotonic", "s.is_monotonic_increasing")


def test_a_removed_legacy_module_is_told_apart_from_a_package_that_is_not_installed() -> None:
    """`No module named 'torchtext.legacy'` is a dataset torchtext removed, not a missing package to install."""
    sym = catalogue.symptoms("import_error", "ModuleNotFoundError: No module named 'torchtext.legacy'\n", "failed",
                             ["train.py"])
    first = next(e for e in catalogue.CATALOGUE if e.recognise(sym) is not None)
    assert first.name == "removed_dataset"


def test_an_output_path_the_code_does_not_name_stops_the_branch_with_how_to_go_on() -> None:
    """`--output_dir /scratch/ckpt` on the command: no literal in the code names it, so no edit can move it; a data
    path beside it (`/data/train.csv`, read, never refused) is left alone either way."""
    from nightlab.agent.policy.catalogue import outside_writes as ow
    from nightlab.agent.policy.catalogue.entry import Fix, Frame, NoFix, Site, Symptoms

    sym = Symptoms(cls="runtime_error", exception="OSError",
                   message="[Errno 30] Read-only file system: '/scratch/ckpt'", log="", result="failed")
    match = ow.recognise_outside_write(sym)
    assert match is not None and "/scratch/ckpt" in match.diagnosis
    code = "import sys\nDATA = '/data/train.csv'\nout = sys.argv[2]\n"
    (nofix,) = ow.repair_outside_write(match, Site(files={"train.py": code}, frames=(Frame("train.py", 3),)))
    assert isinstance(nofix, NoFix) and 'sandbox.writable = ["/scratch/ckpt"]' in nofix.reason
    assert "relative path" in nofix.reason
    # named in the code: the literal is rewritten, the data path is not
    code += "CKPT = '/scratch/ckpt/last.pt'\n"
    (fix,) = ow.repair_outside_write(match, Site(files={"train.py": code}))
    assert isinstance(fix, Fix) and "CKPT = 'scratch/ckpt/last.pt'" in fix.texts["train.py"]
    assert "DATA = '/data/train.csv'" in fix.texts["train.py"]
    # named on the command (a flag's value, `--flag=value`, a Hydra override): the command's word is rewritten, the
    # data path beside it is not, and the fix is the new command
    from nightlab.agent.policy.commandline import COMMAND_PATH

    plain = "import sys\nout = sys.argv[2]\n"
    for command, expected in [
            ("python train.py --out /scratch/ckpt --data /data/train.csv",
             "python train.py --out scratch/ckpt --data /data/train.csv"),
            ("python train.py --out=/scratch/ckpt/run1 --resume $HOME/scratch/ckpt",
             "python train.py --out=scratch/ckpt/run1 --resume $HOME/scratch/ckpt"),
            ('python train.py hydra.run.dir="/scratch" data.path=/data/x', 'python train.py hydra.run.dir="scratch" '
             "data.path=/data/x")]:
        (fix,) = ow.repair_outside_write(match, Site(files={"train.py": plain}, command=command))
        assert isinstance(fix, Fix) and fix.texts == {COMMAND_PATH: expected}, (command, fix)
        assert "(the command)" in fix.title
    # named in a config or a script the run reads: rewritten there; other files' text is not touched
    files = {"train.py": plain, "conf/train.yaml": "output_dir: /scratch/ckpt  # where runs go\ndata: /data/x\n",
             "train.sh": 'python train.py --out "/scratch/ckpt/run1" "$@"\n', "NOTES.md": "see /scratch/ckpt\n"}
    (fix,) = ow.repair_outside_write(match, Site(files=files, command="bash train.sh"))
    assert isinstance(fix, Fix) and set(fix.texts) == {"conf/train.yaml", "train.sh"}
    assert fix.texts["conf/train.yaml"] == "output_dir: scratch/ckpt  # where runs go\ndata: /data/x\n"
    assert fix.texts["train.sh"] == 'python train.py --out "scratch/ckpt/run1" "$@"\n'
    # Landlock refuses with EACCES: a write where the failing line writes, never a read
    denied = "[Errno 13] Permission denied: '/scratch/ckpt'"
    for code in ("os.makedirs(args.out, exist_ok=True)", "torch.save(model.state_dict(), path)",
                 "with open(os.path.join(out, 'log.txt'), 'w') as f:"):
        landlock = Symptoms(cls="runtime_error", exception="PermissionError", message=denied, log="",
                            result="failed", frames=(Frame("train.py", 9, code),))
        assert ow.recognise_outside_write(landlock) is not None, code
    for code in ("df = pd.read_csv(DATA)", "with open(DATA) as f:", "with open(DATA, 'rb') as f:"):
        read = Symptoms(cls="runtime_error", exception="PermissionError", message=denied, log="", result="failed",
                        frames=(Frame("train.py", 2, code),))
        assert ow.recognise_outside_write(read) is None, code
