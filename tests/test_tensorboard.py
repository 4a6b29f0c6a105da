"""Metrics and curves from TensorBoard event files: a script that only writes events goes through the real engine;
tag selection, reductions and failures read real event files written by PyTorch's SummaryWriter."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nightlab.agent import run_metrics, tbevents
from nightlab.agent.config import MetricConfig, ProjectConfig, SearchConfig, dump_config, load_config
from nightlab.errors import ConfigError

from helpers import git, make_repo

# A training script that logs only to TensorBoard (PyTorch's SummaryWriter, default folder runs/<date>_<host>/):
# nothing metric-like is printed. val/acc peaks at LR = 0.3 and grows over the epochs.
TB_TRAIN = '''\
import argparse
import math
import random

from torch.utils.tensorboard import SummaryWriter

LR = 0.05
EPOCHS = 4

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
seed = p.parse_args().seed
random.seed(seed)
score = 0.9 - 0.25 * abs(math.log10(LR / 0.3)) + random.uniform(-0.002, 0.002)
writer = SummaryWriter()
for epoch in range(EPOCHS):
    writer.add_scalar("train/loss", 1.0 / (epoch + 1) + (0.9 - score), epoch)
    writer.add_scalar("val/acc", score * (epoch + 1) / EPOCHS, epoch)
writer.close()
print("training finished")
'''


def _expected_score(lr: float, seed: int) -> float:
    import random

    rnd = random.Random(seed)
    return 0.9 - 0.25 * abs(math.log10(lr / 0.3)) + rnd.uniform(-0.002, 0.002)


def _tb_project(root: Path, **metric: object) -> Path:
    make_repo(root, {"train.py": TB_TRAIN})
    cfg = ProjectConfig(command=f"{sys.executable} train.py --seed {{seed}}",
                        metric=MetricConfig(name="val/acc", goal="maximize", source="tensorboard", **metric),
                        editable=["train.py"], timeout=120, search=SearchConfig(budget=2, noise_seeds=1))
    (root / "nightlab.toml").write_text(dump_config(cfg))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def test_a_script_that_only_writes_tensorboard_events_runs_through_the_engine(tmp_path: Path) -> None:
    root = _tb_project(tmp_path / "proj")
    assert 'source = "tensorboard"' in (root / "nightlab.toml").read_text()
    p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "2"],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr + p.stdout
    data = json.loads(subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=root,
                                     capture_output=True, text=True, check=True).stdout)
    base = next(e for e in data["experiments"] if e["kind"] == "baseline")
    assert base["status"] == "kept"
    assert base["metric"] == pytest.approx(_expected_score(0.05, 0), abs=1e-6)  # read from events: float32

    from nightlab.agent.engine import open_store

    e = open_store(root).experiment(base["id"])
    assert "val/acc" not in (e.log_tail or "") and "training finished" in (e.log_tail or "")
    assert [s for s, _ in e.curve] == [0, 1, 2, 3]  # the tag's series is the metric's curve
    assert [s for s, _ in e.loss_curve] == [0, 1, 2, 3]  # nothing printed a loss: train/loss is read from events
    assert e.loss_curve[0][1] > e.loss_curve[-1][1]
    kept = list((root / ".nightlab" / "runs" / str(e.id) / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(kept) == 1 and kept[0].parent.parent.name == "runs"  # the worktree's runs/<date>_<host>/ layout
    assert tbevents.select(tbevents.read_run(kept[0].parent), "val/acc").points[-1][1] == pytest.approx(  # type: ignore[union-attr]
        base["metric"])

    # one session's runs gathered for `tensorboard --logdir`, one folder per experiment named by id and hypothesis
    out = subprocess.run([sys.executable, "-m", "nightlab", "export", "tensorboard"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    dest = root / ".nightlab" / "tensorboard" / f"session-{e.session_id}"
    ran = [x for x in data["experiments"] if x["metric"] is not None]
    assert f"{len(ran)} run(s) of session {e.session_id} in {dest}" in out and f"tensorboard --logdir {dest}" in out
    folders = sorted(d.name for d in dest.iterdir())
    assert folders[0] == f"{e.id} baseline the code as committed" and len(folders) == len(ran)
    series = tbevents.read_run(dest / folders[0])
    assert {s.tag for s in series} == {"train/loss", "val/acc"}


@pytest.fixture(scope="module")
def keras_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two writers as Keras lays them out (train/ and validation/, the same tags), and a diverged run."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("events")
    for folder, accs in (("logs/train", [0.5, 0.7, 0.9]), ("logs/validation", [0.4, 0.6, 0.55])):
        w = SummaryWriter(str(root / folder))
        for step, acc in enumerate(accs):
            w.add_scalar("epoch_accuracy", acc, step)
            w.add_scalar("epoch_loss", 1 - acc, step)
        w.close()
    w = SummaryWriter(str(root / "diverged"))
    for step, loss in enumerate([1.0, 0.5, float("nan")]):
        w.add_scalar("loss", loss, step)
    w.close()
    return root


def _metric(**kw: object) -> MetricConfig:
    base: dict[str, object] = {"name": "epoch_accuracy", "goal": "maximize", "source": "tensorboard"}
    return MetricConfig.model_validate({**base, **kw})


def test_tag_written_by_two_writers_needs_a_logdir(keras_like: Path) -> None:
    got = run_metrics.read_run(_metric(), "", keras_like)
    assert got.reading.value is None
    assert "written in 2 event folders (logs/train, logs/validation)" in (got.reading.error or "")
    assert "metric.logdir" in (got.reading.error or "")


@pytest.mark.parametrize(("reduce", "value", "step"), [("last", 0.55, 2), ("max", 0.6, 1), ("min", 0.4, 0)])
def test_reductions_pick_last_min_or_max(keras_like: Path, reduce: str, value: float, step: int) -> None:
    got = run_metrics.read_run(_metric(logdir="logs/validation", reduce=reduce), "", keras_like)
    assert got.reading.ok and got.reading.value == pytest.approx(value)
    assert f"step {step}" in (got.reading.raw or "")
    assert [s for s, _ in got.reading.curve] == [0, 1, 2]


def test_loss_curve_for_diagnosis_skips_the_validation_writer(keras_like: Path) -> None:
    series = tbevents.read_run(keras_like / "logs")
    loss = tbevents.loss_series(series)
    assert loss is not None and loss.folder == "train" and loss.tag == "epoch_loss"
    # a printed loss curve wins over the events' one
    got = run_metrics.read_run(_metric(logdir="logs/validation"), "step 1 loss 0.9\nstep 2 loss 0.4\n", keras_like)
    assert got.loss_curve == [(1, 0.9), (2, 0.4)]


def test_a_series_ending_in_nan_is_a_failure_whatever_the_reduction(keras_like: Path) -> None:
    for reduce in ("last", "min"):
        got = run_metrics.read_run(_metric(name="loss", goal="minimize", logdir="diverged", reduce=reduce), "",
                                   keras_like)
        assert got.reading.value is None and "last value is nan (step 2)" in (got.reading.error or "")
        assert got.reading.curve == [(0, 1.0), (1, 0.5)]


def test_missing_tag_and_missing_events_say_what_was_seen(keras_like: Path, tmp_path: Path) -> None:
    got = run_metrics.read_run(_metric(name="accuracy", logdir="logs/train"), "", keras_like)
    assert "never written (similar: epoch_accuracy)" in (got.reading.error or "")
    got = run_metrics.read_run(_metric(), "", tmp_path)
    assert "no TensorBoard event files were written during the run" in (got.reading.error or "")
    # files older than the run's start are not its own (committed to the repository, or left by an earlier attempt)
    assert tbevents.event_folders(keras_like, since=9e9) == []


def test_without_the_tensorboard_package_the_error_says_what_to_install(keras_like: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # type: ignore[arg-type]
    assert not tbevents.available()
    with pytest.raises(tbevents.TensorBoardMissing, match=r"pip install 'nightlab\[tensorboard\]'"):
        tbevents.require()
    got = run_metrics.read_run(_metric(logdir="logs/train"), "", keras_like)
    assert got.reading.value is None and "nightlab[tensorboard]" in (got.reading.error or "")
    # with the metric in the log, events that cannot be read are a note, not a failure
    got = run_metrics.read_run(MetricConfig(name="acc", goal="maximize"), "acc=0.5\n", keras_like)
    assert got.reading.value == 0.5 and "nightlab[tensorboard]" in (got.note or "")
    # a log that prints its loss needs nothing from the events: they are not parsed at all, only kept
    kept = tmp_path / "run"
    got = run_metrics.read_run(MetricConfig(name="acc", goal="maximize"), "step 1 loss 0.9\nacc=0.5\n", keras_like,
                               run_dir=kept)
    assert got.note is None and got.loss_curve == [(1, 0.9)] and got.events_kept == 3
    assert len(list(kept.rglob("events.out.tfevents.*"))) == 3


@pytest.mark.parametrize(("metric", "message"), [
    ('source = "tensorboard"\nlogdir = "/data/tb"', "metric.logdir: Value error, must be a folder inside the worktree"),
    ('source = "tensorboard"\nlogdir = "../tb"', "metric.logdir: Value error, must be a folder inside the worktree"),
    ('tag = "val/acc"', 'metric: Value error, tag only apply to source = "tensorboard"'),
    ('reduce = "max"', 'metric: Value error, reduce only apply to source = "tensorboard"'),
    ('source = "tensorboard"\nregex = "acc=(.*)"', 'regex and file apply to source = "log"'),
    ('source = "wandb"', "metric.source: Input should be 'log' or 'tensorboard'"),
])
def test_bad_tensorboard_settings_are_one_line_errors(tmp_path: Path, metric: str, message: str) -> None:
    (tmp_path / "nightlab.toml").write_text(f'command = "x"\n[metric]\nname = "acc"\ngoal = "maximize"\n{metric}\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_init_offers_the_event_files_when_nothing_metric_like_is_printed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"train.py": TB_TRAIN})
    p = subprocess.run([sys.executable, "-m", "nightlab", "init", "--yes"], cwd=root, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "the baseline wrote TensorBoard event files: 2 scalar tag(s) (train/loss, val/acc)" in p.stdout
    assert "metric: val/acc = " in p.stdout and "TensorBoard scalar" in p.stdout
    cfg = load_config(root)
    assert (cfg.metric.source, cfg.metric.tb_tag, cfg.metric.goal, cfg.metric.logdir) == \
        ("tensorboard", "val/acc", "maximize", None)
    assert not list(root.rglob("events.out.tfevents.*")), "the baseline ran in a temporary copy"


def test_init_picks_an_event_tag_named_by_metric_and_asks_between_writers(keras_like: Path, tmp_path: Path) -> None:
    from nightlab.agent.project_init import InitOptions, init_project

    # a script that writes Keras-style event files (train/ and validation/) into logs/ by copying ones committed to
    # the repository: those committed copies are older than the run, so they are never taken for its own
    train = "import shutil\nshutil.copytree('recorded', 'logs', copy_function=shutil.copy)\nprint('epoch 3 done')\n"
    root = make_repo(tmp_path / "proj", {"train.py": train})
    shutil.copytree(keras_like / "logs", root / "recorded")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "recorded events")
    asked: list[list[str]] = []

    def ask(question: str, choices: list[str]) -> str:
        asked.append(choices)
        return next(c for c in choices if c.startswith("logs/validation: epoch_accuracy"))

    res = init_project(root, InitOptions(), ask=ask, say=lambda _: None)
    assert asked and all(c.endswith("(TensorBoard)") and "recorded" not in c for c in asked[0])
    assert asked[0][0].startswith("logs/validation: epoch_accuracy")  # held-out accuracy ranks first
    assert (res.config.metric.tb_tag, res.config.metric.logdir, res.baseline) == \
        ("epoch_accuracy", "logs/validation", pytest.approx(0.55))
    # --metric names the tag; two writers have it, so without asking the first folder is chosen and pinned
    res = init_project(root, InitOptions(metric="epoch_loss", goal="minimize", force=True, yes=True),
                       say=lambda _: None)
    assert (res.config.metric.source, res.config.metric.logdir, res.config.metric.goal) == \
        ("tensorboard", "logs/train", "minimize")


def test_event_files_are_read_as_regular_files_only(tmp_path: Path) -> None:
    """The job wrote the folder: a FIFO named like an event file would hang TensorBoard's loader (and the engine),
    a link would be read with the user's rights. Only the regular event files are read."""
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "runs" / "x"
    w = SummaryWriter(str(folder))
    w.add_scalar("val/acc", 0.5, 0)
    w.close()
    os.mkfifo(folder / "events.out.tfevents.0.fifo")
    (tmp_path / "secret").write_text("not an event file")
    (folder / "events.out.tfevents.1.link").symlink_to(tmp_path / "secret")
    series = tbevents.read_folders(tmp_path, [folder])
    assert [(s.tag, s.points) for s in series] == [("val/acc", [(0, 0.5)])]


def test_a_scalar_logged_very_often_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A run (or a job out to exhaust the agent's memory) that logs one scalar far more often than any curve shows:
    at most `MAX_POINTS_PER_TAG` points are kept, the last among them, and its reductions still read."""
    from torch.utils.tensorboard import SummaryWriter

    n = tbevents.MAX_POINTS_PER_TAG * 2 + 7
    w = SummaryWriter(str(tmp_path / "runs" / "long"))
    for step in range(n):
        w.add_scalar("loss", 1.0 / (step + 1), step)
    w.close()
    (series,) = tbevents.read_run(tmp_path)
    assert len(series.points) <= tbevents.MAX_POINTS_PER_TAG
    assert series.points[-1] == (n - 1, pytest.approx(1.0 / n))
    assert tbevents.reduce(series.points, "last") == (pytest.approx(1.0 / n), n - 1)
