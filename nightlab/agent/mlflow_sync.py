"""Writing the project's runs to MLflow: `nightlab export mlflow`, and live logging as runs settle.

`export` makes MLflow agree with the store (the runs `mlflow_runs.plan_project` describes): a run that is missing is
created, one that exists — found by its identity tags — is updated with what it lacks (params, tags, metric points,
the diff, its status), so running it twice changes nothing the second time. It uses MLflow's client
(`mlflow-skinny`, the `nightlab[mlflow]` extra), imported only here and only when asked.

Live logging (`[mlflow] tracking_uri`) runs the same export in a detached process (`python -m
nightlab.agent.mlflow_sync ROOT`) that the engine starts when runs settle. The engine never waits for it, never
imports MLflow (its memory and its wake latency stay what they were), and a slow or dead tracking server costs it
nothing: the syncer records the failure (an `mlflow_error` event, and in `.nightlab/mlflow-sync.json`, which
`nightlab status` shows) and the next settled run tries again. One syncer at a time (a file lock); a request that
finds one running leaves a flag that makes it go round once more. It only sends what changed since its last success
(the store rows' update times), so a long session costs one run's worth of calls per settled run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nightlab.agent.config import ProjectConfig
from nightlab.agent.mlflow_runs import (
    TAG_KEY,
    TAG_PROJECT_ID,
    TERMINAL,
    RunPlan,
    default_experiment_name,
    plan_project,
    project_id,
)
from nightlab.agent.paths import StatePaths
from nightlab.agent.states import EventKind
from nightlab.agent.store import Store
from nightlab.errors import NightlabError

INSTALL_HINT = "pip install 'nightlab[mlflow]'"
STATE_FILE = "mlflow-sync.json"
LOCK_FILE = "mlflow-sync.lock"
DIRTY_FILE = "mlflow-sync.dirty"
LOG_FILE = "mlflow-sync.log"
# a live syncer gives a dead server a few seconds, not MLflow's default minutes of retries: the next settled run
# retries anyway (a user's own MLFLOW_HTTP_REQUEST_* settings win)
LIVE_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class MlflowMissing(NightlabError):
    """The MLflow client is not installed."""


@dataclass
class ExportResult:
    uri: str  # redacted
    experiment: str
    experiment_id: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def runs(self) -> int:
        return self.created + self.updated + self.unchanged


def redact(uri: str) -> str:
    """The URI without a password (`http://user:***@host`): what may be printed or stored."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def resolve_uri(uri: str, base: Path) -> str:
    """Relative local stores made absolute against `base` (the project root for the config's URI, the current
    folder for one typed on the command line): `sqlite:///mlflow.db`, `file:mlruns`, a plain `mlruns` path."""
    uri = uri.strip()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((Path(base) / uri[len("sqlite:///"):]).resolve())
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return "file:" + str((Path(base) / uri[len("file:"):]).resolve())
    if "://" not in uri and not uri.startswith(("file:", "databricks", "sqlite:")):
        return "file:" + str((Path(base) / uri).resolve())
    return uri


def _client_class() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MlflowMissing(f"MLflow is not installed: {INSTALL_HINT}") from None
    return MlflowClient


def _artifact_location(uri: str, name: str) -> str | None:
    """Where a new experiment keeps artefacts: next to a local SQLite store (MLflow's default is ./mlruns in
    whatever folder the client runs in); a server or file store decides for itself."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return str(db.parent / "mlruns" / slug)
    return None


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class _Writer:
    """One export's MLflow session: the experiment, the project's runs already there, and how to sync one run."""

    def __init__(self, uri: str, experiment: str, pid: str) -> None:
        client_cls = _client_class()
        from mlflow.entities import Metric, Param, RunTag

        for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..." is noise here
            logging.getLogger(name).setLevel(logging.WARNING)

        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # asked for explicitly: MLflow's own opt-in
        self.client = client_cls(tracking_uri=uri)
        self.uri = uri
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=_artifact_location(uri, experiment),
                tags={"nightlab.project_id": pid})
        else:
            if exp.lifecycle_stage == "deleted":
                raise NightlabError(f"MLflow experiment {experiment!r} is deleted; restore it or choose another "
                                    "name ([mlflow] experiment)")
            self.experiment_id = exp.experiment_id
        self.runs: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{TAG_PROJECT_ID}` = '{pid}'",
                                           max_results=1000, page_token=token)
            for r in page:
                key = r.data.tags.get(TAG_KEY)
                if key and key not in self.runs:
                    self.runs[key] = r
            token = page.token
            if not token:
                break

    def sync(self, plan: RunPlan, parent_run_id: str | None) -> tuple[str, str]:
        """Make the run match the plan; returns (run id, "created" | "updated" | "unchanged")."""
        tags = dict(plan.tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = self.runs.get(plan.key)
        if run is None:
            created = self.client.create_run(self.experiment_id, start_time=plan.start_ms, tags=tags,
                                             run_name=plan.name)
            run_id = created.info.run_id
            self._log(run_id, plan.metrics, plan.params, {}, plan.start_ms)
            for path, text in plan.artifacts.items():
                self.client.log_text(run_id, text, path)
            self._status(run_id, plan, None)
            return run_id, "created"
        run_id = run.info.run_id
        data = run.data
        params = {k: v for k, v in plan.params.items() if k not in data.params}  # params never change in MLflow
        new_tags = {k: v for k, v in tags.items() if data.tags.get(k) != v}
        metrics: dict[str, list[tuple[int, float]]] = {}
        for key, points in plan.metrics.items():
            have: set[tuple[int, float]] = set()
            if key in data.metrics:
                have = {(m.step, m.value) for m in self.client.get_metric_history(run_id, key)}
            missing = [p for p in points if p not in have]
            if missing:
                metrics[key] = missing
        changed = bool(params or new_tags or metrics)
        if params or new_tags or metrics:
            self._log(run_id, metrics, params, new_tags, plan.start_ms)
        if plan.artifacts:
            present = {f.path for f in self.client.list_artifacts(run_id)}
            for path, text in plan.artifacts.items():
                if path not in present:
                    self.client.log_text(run_id, text, path)
                    changed = True
        if run.info.run_name != plan.name:
            self.client.update_run(run_id, name=plan.name)
            changed = True
        changed |= self._status(run_id, plan, run.info)
        return run_id, "updated" if changed else "unchanged"

    def _log(self, run_id: str, metrics: dict[str, list[tuple[int, float]]], params: dict[str, str],
             tags: dict[str, str], ts: int) -> None:
        ms = [self.Metric(k, v, ts, s) for k, pts in metrics.items() for s, v in pts]
        ps = [self.Param(k, v) for k, v in params.items()]
        ts_ = [self.RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(ms, 1000):
            self.client.log_batch(run_id, metrics=chunk)
        for chunk in _chunks(ps, 100):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(ts_, 100):
            self.client.log_batch(run_id, tags=chunk)

    def _status(self, run_id: str, plan: RunPlan, info: Any) -> bool:
        if info is not None and info.status == plan.status and (plan.end_ms is None or info.end_time == plan.end_ms):
            return False
        if plan.status in TERMINAL:
            self.client.set_terminated(run_id, status=plan.status, end_time=plan.end_ms)
        else:
            self.client.update_run(run_id, status=plan.status)
        return True


def export(root: Path, cfg: ProjectConfig, store: Store, uri: str, *, experiment: str | None = None,
           versions: dict[str, str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Write the project's runs to the MLflow tracking server or store at `uri` (idempotent: see the module doc).

    With `versions` (key -> the plan version last written), unchanged experiments are skipped and the dict is
    updated with what was written: what the live syncer keeps between passes.
    """
    root = Path(root).resolve()
    pid = project_id(root)
    name = experiment or cfg.mlflow.experiment or default_experiment_name(root)
    plans = plan_project(root, cfg, store, versions=versions)
    if versions is not None:
        plans = [p for p in plans if versions.get(p.key) != p.version]
    try:
        writer = _Writer(uri, name, pid)
    except NightlabError:
        raise
    except Exception as err:
        raise NightlabError(f"MLflow at {redact(uri)}: {_one_line(err, uri)}") from None
    result = ExportResult(redact(uri), name, writer.experiment_id)
    run_ids: dict[str, str] = {k: r.info.run_id for k, r in writer.runs.items()}
    for i, plan in enumerate(plans):
        parent = run_ids.get(plan.parent_key) if plan.parent_key else None
        try:
            run_id, what = writer.sync(plan, parent)
        except Exception as err:
            raise NightlabError(f"MLflow at {redact(uri)}: run {plan.name!r}: {_one_line(err, uri)}") from None
        run_ids[plan.key] = run_id
        setattr(result, what, getattr(result, what) + 1)
        if versions is not None:
            versions[plan.key] = plan.version
        if progress is not None:
            progress(i + 1, len(plans))
    return result


def _one_line(err: BaseException, uri: str = "") -> str:
    """The first line of an error, without the URI's password (MLflow's messages quote the URL they called)."""
    text = str(err)
    try:
        password = urlsplit(uri).password if uri else None
    except ValueError:
        password = None
    if password:
        text = text.replace(f":{password}@", ":***@").replace(password, "***")
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:300]


# ----------------------------------------------------------------------------------------------- live logging
def _state_dir(root: Path) -> Path:
    return StatePaths.of(root).dir


def read_state(root: Path) -> dict[str, Any]:
    """What the live syncer last did: uri (redacted), synced_at, error, and the versions it wrote."""
    try:
        data = json.loads((_state_dir(root) / STATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(root: Path, state: dict[str, Any]) -> None:
    from nightlab.sandbox.spec import atomic_write_json

    atomic_write_json(_state_dir(root) / STATE_FILE, state)


@contextlib.contextmanager
def _sync_lock(root: Path) -> Iterator[bool]:
    """Non-blocking: yields True when this process is the one syncer, False when another one is."""
    path = _state_dir(root) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def request(root: Path) -> str | None:
    """Ask for a live sync (the engine calls this when runs settle): start the detached syncer, or, when one is
    running, flag it to go round once more. Never waits; returns a one-line error, or None."""
    state = _state_dir(root)
    try:
        (state / DIRTY_FILE).touch()
        with _sync_lock(root) as mine:
            if not mine:
                return None  # the running syncer sees the flag
        log = state / LOG_FILE
        if log.exists() and log.stat().st_size > 1 << 20:
            log.unlink()
        with open(log, "ab") as err:
            subprocess.Popen([sys.executable, "-m", "nightlab.agent.mlflow_sync", str(Path(root).resolve())],
                             cwd=str(root), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True, close_fds=True)
    except OSError as err:
        return f"could not start MLflow logging: {err}"
    return None


def log_live(root: Path, cfg: ProjectConfig, emit: Callable[..., Any]) -> None:
    """Live logging ([mlflow] tracking_uri), as the engine asks when runs settle and when a session hibernates or
    ends: hand the news to the detached syncer (`request`), so a slow or dead tracking server never holds the engine
    up; only a syncer that could not be started is said here (an `mlflow_error` event), it records its own failures."""
    if not cfg.mlflow.tracking_uri:
        return
    err = request(root)
    if err:
        emit(EventKind.MLFLOW_ERROR, err)


def wait_idle(root: Path, timeout: float) -> bool:
    """Wait until no syncer runs and none is asked for (what a test or a script waits on before reading MLflow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not (_state_dir(root) / DIRTY_FILE).exists():
            with _sync_lock(root) as free:
                if free and not (_state_dir(root) / DIRTY_FILE).exists():
                    return True
        time.sleep(0.1)
    return False


def sync_pass(root: Path) -> None:
    """One live pass: export what changed since the last successful pass; a failure is recorded, not raised."""
    from nightlab.agent.config import load_config

    root = Path(root).resolve()
    cfg = load_config(root)
    if not cfg.mlflow.tracking_uri:
        return
    uri = resolve_uri(cfg.mlflow.tracking_uri, root)
    state = read_state(root)
    versions: dict[str, str] = dict(state.get("versions") or {}) if state.get("uri") == redact(uri) else {}
    store = Store(_state_dir(root) / "nightlab.db")
    try:
        result = export(root, cfg, store, uri, versions=versions)
        _write_state(root, {"uri": redact(uri), "experiment": result.experiment, "synced_at": time.time(),
                            "error": None, "versions": versions,
                            "last": {"created": result.created, "updated": result.updated}})
    except NightlabError as err:
        msg = f"MLflow logging failed ({err}); the next settled run retries"
        _write_state(root, {**state, "uri": redact(uri), "error": msg, "error_at": time.time(),
                            "versions": versions})
        sid = store.latest_session()
        store.event(EventKind.MLFLOW_ERROR, msg, session_id=sid.id if sid else None)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    """The detached live syncer: passes while there is news, one process at a time. Always exits 0."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else ".").resolve()
    for k, v in LIVE_HTTP_ENV.items():
        os.environ.setdefault(k, v)
    dirty = _state_dir(root) / DIRTY_FILE
    while True:
        with _sync_lock(root) as mine:
            if not mine:
                return 0
            for _ in range(20):  # bounded: a flood of requests cannot keep one process alive for ever
                if not dirty.exists():
                    break
                dirty.unlink(missing_ok=True)
                try:
                    sync_pass(root)
                except Exception as err:  # a broken config, a store error: say it where the user looks
                    print(f"nightlab mlflow sync: {_one_line(err)}", file=sys.stderr)
        if not dirty.exists():
            return 0


if __name__ == "__main__":  # pragma: no cover - run as a detached process
    sys.exit(main())
