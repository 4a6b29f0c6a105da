"""MLflow: `nightlab export mlflow` read back with MLflow's own client from a local SQLite store, twice (the second
export changes nothing), and live logging as runs settle, including to a tracking server that is down."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent import mlflow_sync
from nightlab.agent.engine import open_store
from nightlab.agent.trajectories import scrub
from nightlab.cli import main

from helpers import git


def _nightlab(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr + p.stdout
    return p


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(client: Any, name: str) -> list[Any]:
    exp = client.get_experiment_by_name(name)
    assert exp is not None, f"no MLflow experiment {name!r}"
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def _set_mlflow(root: Path, uri: str) -> None:
    cfg = root / "nightlab.toml"
    cfg.write_text(cfg.read_text() + f'\n[mlflow]\ntracking_uri = "{uri}"\n')
    git(root, "commit", "-q", "-am", "mlflow")


def _export(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`nightlab export mlflow ARGS` through the CLI, in this process (MLflow is imported once per test run)."""
    capsys.readouterr()
    assert main(["-C", str(root), "export", "mlflow", *args]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_export_reads_back_with_mlflows_client_and_again_changes_nothing(tiny_project: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _nightlab(tiny_project, "run", "--mode", "autonomous", "--budget", "4")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = _export(tiny_project, capsys, "--tracking-uri", uri)
    store = open_store(tiny_project)
    exps = [e for e in store.experiments() if store.latest_job(e.id) is not None]
    sessions = {e.session_id for e in exps}
    assert f"{len(exps) + len(sessions)} run(s) in MLflow experiment 'nightlab-proj'" in out
    assert f"{len(exps) + len(sessions)} created, 0 updated, 0 unchanged" in out

    client = _client(uri)
    runs = _runs(client, "nightlab-proj")
    assert len(runs) == len(exps) + len(sessions)
    by_exp = {r.data.tags["nightlab.experiment_id"]: r for r in runs if "nightlab.experiment_id" in r.data.tags}
    session_run = next(r for r in runs if r.data.tags.get("nightlab.kind") == "session")
    assert session_run.info.run_name == f"session {exps[0].session_id}" and session_run.info.status == "FINISHED"
    changed_a_knob = False
    for e in exps:
        r = by_exp[str(e.id)]
        tags = r.data.tags
        assert tags["hypothesis"] == e.title and tags["status"] == e.status and tags["seed"] == str(e.seed)
        assert tags["branch"] == e.branch and tags["parent"] == (str(e.parent_id) if e.parent_id else "")
        assert tags["mlflow.parentRunId"] == session_run.info.run_id  # nested under its session
        assert r.info.run_name.startswith(f"#{e.id} ")
        assert r.info.status == ("FINISHED" if e.run_result == "succeeded" else "FAILED")
        if e.metric is not None:
            history = client.get_metric_history(r.info.run_id, "acc")
            assert [m.value for m in history][-1] == pytest.approx(e.metric)
            assert r.data.metrics["nightlab.metric"] == pytest.approx(e.metric)
        loss = client.get_metric_history(r.info.run_id, "nightlab.train_loss")
        assert sorted((m.step, m.value) for m in loss) == [(int(s), v) for s, v in e.loss_curve]
        artifacts = {f.path for f in client.list_artifacts(r.info.run_id)}
        if e.patch:
            assert artifacts == {"diff.patch"}
            diff = Path(client.download_artifacts(r.info.run_id, "diff.patch", str(tmp_path))).read_text()
            assert diff == scrub(e.patch, tiny_project)
        else:
            assert artifacts == set()
        # params: the knobs whose values differ from the committed code (TINY_TRAIN: LR = 0.05, EPOCHS = 3)
        for name, value in r.data.params.items():
            assert name in ("LR", "EPOCHS", "LOG_EVERY") and value != {"LR": "0.05", "EPOCHS": "3"}.get(name)
        if e.kind == "hyperparameter" and e.knobs:
            changed = {k: str(v) for k, v in e.knobs.items() if k in ("LR", "EPOCHS")
                       and str(v) != {"LR": "0.05", "EPOCHS": "3"}[k]}
            assert r.data.params == changed
            changed_a_knob |= bool(changed) and tags["changed"] != ""
    assert changed_a_knob, "no experiment changed a knob"

    # again: nothing new, nothing doubled
    out = _export(tiny_project, capsys, "--tracking-uri", uri)
    assert f"0 created, 0 updated, {len(exps) + len(sessions)} unchanged" in out
    again = _runs(client, "nightlab-proj")
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
    for r in again:
        for key in r.data.metrics:
            hist = client.get_metric_history(r.info.run_id, key)
            assert len(hist) == len({(m.step, m.value) for m in hist}), f"duplicated points in {key}"

    # a status that changes later (a promote) updates the same run
    best = next(e for e in exps if e.status == "kept" and e.kind != "baseline" and e.kind != "rerun")
    store.update_experiment(best.id, status="promoted")
    out = _export(tiny_project, capsys, "--tracking-uri", uri)
    assert "0 created, 1 updated" in out
    assert client.get_run(by_exp[str(best.id)].info.run_id).data.tags["status"] == "promoted"


def test_live_logging_as_runs_settle(tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'live.db'}"
    _set_mlflow(tiny_project, uri)
    _nightlab(tiny_project, "run", "--mode", "autonomous", "--budget", "3")
    assert mlflow_sync.wait_idle(tiny_project, 180), "the live MLflow syncer did not finish"
    state = mlflow_sync.read_state(tiny_project)
    assert state["error"] is None and state["uri"] == uri
    store = open_store(tiny_project)
    exps = [e for e in store.experiments() if store.latest_job(e.id) is not None]
    runs = _runs(_client(uri), "nightlab-proj")
    by_exp = {r.data.tags.get("nightlab.experiment_id"): r for r in runs}
    assert {str(e.id) for e in exps} <= set(by_exp)
    for e in exps:
        assert by_exp[str(e.id)].data.tags["status"] == e.status  # the final state, not the one at settle time
    assert any(r.data.tags.get("state") == "done" for r in runs)  # the session run
    # the live export and a manual one agree: nothing left to write
    out = _export(tiny_project, capsys)
    assert " 0 created, 0 updated," in out and (tmp_path / "live.db").exists()
    status = json.loads(_nightlab(tiny_project, "status", "--json").stdout)
    assert status["mlflow"]["error"] is None and status["mlflow"]["uri"] == uri


def test_a_tracking_server_that_is_down_never_stops_the_engine(tiny_project: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    _set_mlflow(tiny_project, f"http://user:hunter2@127.0.0.1:{port}")
    p = _nightlab(tiny_project, "run", "--mode", "autonomous", "--budget", "3")
    assert "session" in p.stdout or p.stdout
    store = open_store(tiny_project)
    assert store.latest_session().state == "done"  # type: ignore[union-attr]
    assert len([e for e in store.experiments() if e.run_result == "succeeded"]) == 3
    assert mlflow_sync.wait_idle(tiny_project, 180)
    errors = [ev for ev in store.events(limit=10_000) if ev["kind"] == "mlflow_error"]
    assert errors and "MLflow logging failed" in errors[-1]["message"]
    assert "hunter2" not in errors[-1]["message"] and "user:***@127.0.0.1" in errors[-1]["message"]
    out = _nightlab(tiny_project, "status").stdout
    assert "MLflow logging failed" in out and "hunter2" not in out


def test_export_without_mlflow_or_uri_is_one_clear_line(tiny_project: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    open_store(tiny_project)
    assert main(["-C", str(tiny_project), "export", "mlflow"]) != 0
    assert "no MLflow tracking URI: pass --tracking-uri" in capsys.readouterr().err
    for mod in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # type: ignore[arg-type]
    assert main(["-C", str(tiny_project), "export", "mlflow", "--tracking-uri", "sqlite:///x.db"]) != 0
    err = capsys.readouterr().err
    assert err.strip() == "nightlab: MLflow is not installed: pip install 'nightlab[mlflow]'"


def test_relative_local_stores_resolve_against_a_base(tmp_path: Path) -> None:
    assert mlflow_sync.resolve_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert mlflow_sync.resolve_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert mlflow_sync.resolve_uri("file:mlruns", tmp_path) == f"file:{tmp_path}/mlruns"
    assert mlflow_sync.resolve_uri("mlruns", tmp_path) == f"file:{tmp_path}/mlruns"
    assert mlflow_sync.resolve_uri("http://h:5000", tmp_path) == "http://h:5000"
    assert mlflow_sync.redact("https://me:secret@h:5000/x") == "https://me:***@h:5000/x"
