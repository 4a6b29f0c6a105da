"""bench/search.py's peers (bench/peers.py) and its paired comparison (bench/paired.py).

Every peer runs on a toy task through the real harness (the cache wrapper, the editing code, real subprocesses):
it starts from the committed configuration exactly when it should, spends exactly its budget, has the runs that
exceed the timeout stopped and recorded as timed out, and a second invocation replays every run from the cache with
identical decisions. A peer whose package is not installed is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from helpers import BENCH_TRAIN, SHARED_TASKS, bench_task

REPO_ROOT = Path(__file__).resolve().parent.parent

TRAIN = BENCH_TRAIN.replace("{slow}", "")  # what the knobs are read from (the sleep adds none)


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def search() -> ModuleType:
    return sys.modules.get("bench_search") or _load("bench_search", REPO_ROOT / "bench" / "search.py")


@pytest.fixture(scope="module")
def paired(search: ModuleType) -> ModuleType:
    return search.paired()  # type: ignore[no-any-return]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """More than 5 epochs is "too slow": such a run sleeps far past the timeouts used here."""
    return bench_task(tmp_path / "tasks" / "toy", name="toy", slow_above_epochs=5)


def _skip_unless_available(search: ModuleType, name: str) -> Any:
    peer = search.peers().PEERS[name]
    if not peer.available():
        how = "bash scripts/bench-smac.sh" if name == "smac" else "pip install -e '.[bench]'"
        pytest.skip(f"peer {name} needs the {peer.module!r} package ({how})")
    return peer


def _signature(res: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(json.dumps(r["values"], sort_keys=True), r["metric"], r["ok"], r["timed_out"]) for r in res["runs"]]


# smac gets a budget of 2 here, the committed configuration (told, not re-run) and one point of its initial design:
# each trial its Gaussian process proposes costs several CPU seconds; test_smac_model_trials covers those
@pytest.mark.parametrize("name", ["random", "random-default", "optuna", "tpe-default", "cmaes", "smac"])
def test_peer_default_budget_timeout_and_replay(search: ModuleType, toy: Path, tmp_path: Path, name: str) -> None:
    peer = _skip_unless_available(search, name)
    budget = 2 if name == "smac" else 4
    kw = {"cache": tmp_path / "cache", "results": tmp_path / "results", "workers": 1, "timeout": 2.0,
          "progress": lambda s: None}
    first = search.run_benchmark([toy], [name], budget, 2, **kw)
    spaces = {d.key: d.space for d in search.search_dims({"train.py": TRAIN})}
    assert {"CONFIG.lr", "CONFIG.epochs"} <= set(spaces)
    timed_out = 0
    for res in first["results"]:
        assert res["error"] is None, res["error"]
        assert len(res["runs"]) == budget  # the budget, no more, no less
        defaults = [i for i, r in enumerate(res["runs"]) if r["values"] == {}]
        # the committed configuration is run (unmodified) as trial 1 exactly by the peers that start from it
        assert defaults == ([0] if peer.default_first else []), res["runs"]
        for r in res["runs"]:
            for key, v in r["values"].items():
                sp = spaces[key]
                assert sp.low <= v <= sp.high, (key, v)
            slow = r["values"].get("CONFIG.epochs", 4) > 5
            assert r["timed_out"] == slow and r["ok"] == (not slow), r  # stopped at the timeout, a failed run
            timed_out += slow
        assert res["timeouts"] == sum(r["timed_out"] for r in res["runs"]) and res["failed"] >= res["timeouts"]
    row = first["rows"][0]
    assert row["runs"] == 2 * budget and row["timeouts"] == timed_out
    again = search.run_benchmark([toy], [name], budget, 2, **kw)
    assert sum(r["trained"] for r in again["results"]) == 0  # every run, timeouts included, replayed
    assert [_signature(r) for r in again["results"]] == [_signature(r) for r in first["results"]]
    assert again["rows"][0]["best_mean"] == row["best_mean"]


def test_default_first_peers_share_the_baseline_run(search: ModuleType, toy: Path, tmp_path: Path) -> None:
    """The committed configuration at seed s is one cached run, whichever default-first method asks first."""
    kw = {"cache": tmp_path / "cache", "results": tmp_path / "results", "workers": 1, "timeout": 2.0,
          "progress": lambda s: None}
    data = search.run_benchmark([toy], ["random-default", "tpe-default"], 2, 1, **kw)
    a, b = sorted(data["results"], key=lambda r: r["method"])
    assert a["runs"][0]["values"] == b["runs"][0]["values"] == {}
    assert a["runs"][0]["metric"] == b["runs"][0]["metric"] is not None
    assert a["trained"] + b["trained"] == 3 and a["cached"] + b["cached"] == 1


def test_a_missing_peer_package_is_one_clear_line(search: ModuleType, toy: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(search.peers().PEERS)
    table["cmaes"] = dataclasses.replace(table["cmaes"], module="no_such_package_nightlab")
    monkeypatch.setattr(search.peers(), "PEERS", table)
    with pytest.raises(SystemExit, match="method 'cmaes' needs the 'no_such_package_nightlab' package"):
        search.run_benchmark([toy], ["nightlab", "cmaes"], 2, 1, cache=tmp_path / "c", results=tmp_path / "r",
                             progress=lambda s: None)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # refused before anything ran


def test_samplers_alone_spend_their_trials_inside_the_spaces(search: ModuleType) -> None:
    """Each peer's sampler on a fake objective (no subprocess): exactly `trials` calls, values inside the spaces,
    CMA-ES and TPE-default told the committed configuration, and the same seed giving the same sequence."""
    peers = search.peers()
    dims = search.search_dims({"train.py": TRAIN})

    def objective(values: dict[str, Any]) -> dict[str, Any]:
        lr = values.get("CONFIG.lr", 0.01)
        return {"ok": True, "metric": -abs(math.log10(lr / 0.1))}

    for name in ("random", "random-default", "optuna", "tpe-default", "cmaes"):
        peer = peers.PEERS[name]
        if not peer.available():
            continue
        seqs = []
        for _ in range(2):
            calls: list[dict[str, Any]] = []

            def train(v: dict[str, Any], calls: list[dict[str, Any]] = calls) -> dict[str, Any]:
                calls.append(v)
                return objective(v)

            base = objective({}) if peer.default_first else None
            peer.run(peers.Search(dims=dims, seed=3, trials=7, budget=8, goal="maximize", train=train,
                                  snap=search.snap, base_run=base))
            assert len(calls) == 7, name
            for v in calls:
                assert set(v) == {d.key for d in dims}
                for d in dims:
                    assert d.space.low <= v[d.key] <= d.space.high, (name, d.key, v[d.key])
            seqs.append(calls)
        assert seqs[0] == seqs[1], name  # seeded: a rerun asks for the same values


def test_smac_model_trials(search: ModuleType) -> None:
    """SMAC past its initial design: the committed configuration is told (not trained again), the Gaussian process
    proposes the rest, inside the spaces, one training per trial."""
    peer = _skip_unless_available(search, "smac")
    dims = search.search_dims({"train.py": TRAIN})
    calls: list[dict[str, Any]] = []

    def train(v: dict[str, Any]) -> dict[str, Any]:
        calls.append(v)
        return {"ok": True, "metric": -abs(math.log10(v["CONFIG.lr"] / 0.1))}

    peer.run(search.peers().Search(dims=dims, seed=1, trials=3, budget=4, goal="maximize", train=train,
                                   snap=search.snap, base_run={"ok": True, "metric": -1.0}))
    assert len(calls) == 3 and all(v for v in calls)  # 1 Sobol point + 2 from the model; the default not re-run
    for v in calls:
        for d in dims:
            assert d.space.low <= v[d.key] <= d.space.high


def test_sign_test_and_wilcoxon_exact(paired: ModuleType) -> None:
    assert paired.sign_test_p(8, 0) == pytest.approx(2 / 256)
    assert paired.sign_test_p(6, 2) == pytest.approx(2 * (1 + 8 + 28) / 256)
    assert paired.sign_test_p(4, 4) == 1.0 and paired.sign_test_p(0, 0) is None
    assert paired.wilcoxon_p([0.1] * 8) == pytest.approx(2 / 256)
    assert paired.wilcoxon_p([0.0, 0.0]) is None
    # against scipy's exact test where it is installed (scikit-learn brings it)
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(5)
    compared = 0
    for _ in range(40):
        d = [round(rng.uniform(-1, 1.5), 2) for _ in range(8)]
        if 0.0 in d or len({abs(x) for x in d}) < len(d):
            continue  # scipy's exact test wants no zeros and distinct magnitudes
        assert paired.wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue), d
        compared += 1
    assert compared >= 10


def test_paired_compare_counts_task_seeds(paired: ModuleType) -> None:
    @dataclasses.dataclass
    class R:
        task: str
        method: str
        seed: int
        gap: float
        error: str | None = None

    rs = [R("a", "nightlab", s, 0.5) for s in range(4)]
    rs += [R("a", "p", s, g) for s, g in enumerate([0.4, 0.5, 0.6, 0.1])]
    rs += [R("b", "nightlab", 0, 0.9), R("b", "p", 0, 0.2), R("b", "p", 1, 0.0),  # seed 1 of b: nightlab missing
           R("c", "nightlab", 0, 0.9, error="boom"), R("c", "p", 0, 0.0)]  # an errored combination is not a pair
    out = paired.compare(rs, ["nightlab", "p"])
    (a, b) = out["rows"]
    assert (a["task"], a["seeds"], a["ahead"], a["tied"], a["behind"]) == ("a", 4, 2, 1, 1)
    assert a["mean_diff"] == pytest.approx((0.1 + 0 - 0.1 + 0.4) / 4)
    assert (b["task"], b["seeds"], b["ahead"]) == ("b", 1, 1)
    assert out["overall"]["p"] == {"task_seeds": 5, "ahead": 3, "tied": 1, "behind": 1, "share_ahead": 0.6}
    text = "\n".join(paired.markdown(out))
    assert "| a | p | 4 | +0.100 | 2 / 1 / 1 |" in text
    assert "nightlab ahead of p on 3 of 5 task-seeds (60 %; tied 1, behind 1; misses the 80 % goal)" in text


def test_report_carries_the_paired_table(search: ModuleType, toy: Path, tmp_path: Path) -> None:
    """nightlab through the engine against random-default at two seeds: the paired section is in the report."""
    kw = {"cache": tmp_path / "cache", "results": tmp_path / "results", "workers": 1, "timeout": 20.0,
          "progress": lambda s: None}
    data = search.run_benchmark([toy], ["nightlab", "random-default"], 2, 2, **kw)
    assert all(r["error"] is None for r in data["results"]), [r["error"] for r in data["results"]]
    p = data["summary"]["paired"]
    (row,) = p["rows"]
    assert (row["task"], row["peer"], row["seeds"]) == ("toy", "random-default", 2)
    assert row["ahead"] + row["tied"] + row["behind"] == 2
    assert "Paired over seeds" in data["markdown"] and "task-seeds" in data["markdown"]
    saved = json.loads(Path(data["paths"][0]).read_text())
    assert saved["summary"]["paired"]["overall"]["random-default"]["task_seeds"] == 2


@pytest.mark.skipif(not SHARED_TASKS.is_dir(), reason=f"{SHARED_TASKS} is absent (it ships beside the repo)")
def test_peers_search_the_knobs_nightlab_found_on_a_shared_task(search: ModuleType, tmp_path: Path) -> None:
    """On a real task, every peer's values land in the files through the same editing code (no run needed)."""
    task = search.load_task(SHARED_TASKS / "digits-mlp")
    repo = search.make_repo(task, tmp_path / "repo")
    layout = search.layout_of(repo, task)
    files = {p: (repo / p).read_text() for p in layout.editable}
    dims = search.search_dims(files, task.command, task.metric, layout)
    assert len(dims) >= 3
    rng = random.Random(0)
    values = {d.key: search.peers().random_value(d, rng, search.snap) for d in dims}
    changed, command = search.apply_values(files, dims, values, layout, task.command, task.metric)
    assert changed != files and set(changed) == set(files)
    assert command == task.command  # digits-mlp's knobs live in its files, not on a command line
    assert not set(layout.protected) & {p for p in files if changed[p] != files[p]}


def test_samplers_draw_an_average_on_its_horizon(search: ModuleType) -> None:
    """A β already on (Adam's 0.99) is drawn on log(1 − β), as nightlab moves it: most draws are β ≥ 0.9 rather
    than uniform over [0, 0.99] (median 0.5, where Adam falls apart); a momentum that is off keeps the plain range;
    the committed 0.99 reaches the Optuna samplers as 1 − 0.99 and every trained value is a β, never 1 − β."""
    text = ("import json, sys\nCONFIG = {'lr': 0.01, 'beta2': 0.99, 'momentum': 0.0}\n"
            "print(json.dumps({'val_acc': CONFIG['lr'] * CONFIG['beta2'] + CONFIG['momentum']}))\n")
    peers = search.peers()
    dims = {d.key: d for d in search.search_dims({"train.py": text})}
    assert {"CONFIG.beta2", "CONFIG.momentum"} <= set(dims)
    beta, mom = dims["CONFIG.beta2"], dims["CONFIG.momentum"]
    assert peers.log1m(beta) and not peers.log1m(mom)
    rng = random.Random(0)
    draws = [peers.random_value(beta, rng, search.snap) for _ in range(400)]
    assert all(0.0 <= b <= 0.999 for b in draws)
    assert sum(b >= 0.9 for b in draws) / len(draws) > 0.6  # uniform over [0, 0.99] would give 9 %
    assert sum(b < 0.5 for b in draws) / len(draws) < 0.15  # uniform would give half
    moms = [peers.random_value(mom, rng, search.snap) for _ in range(400)]
    assert 0.35 < sum(m < 0.5 for m in moms) / len(moms) < 0.65  # the plain range, unchanged
    if peers.PEERS["cmaes"].available():
        dists = {k: peers.distribution(d) for k, d in dims.items()}
        assert dists["CONFIG.beta2"].log and math.isclose(dists["CONFIG.beta2"].high, 1.0)
        told = peers.default_params(list(dims.values()), dists)
        assert math.isclose(told["CONFIG.beta2"], 0.01)  # the committed β as the sampler sees it
        for name in ("tpe-default", "cmaes"):
            calls: list[dict[str, Any]] = []

            def train(v: dict[str, Any], calls: list[dict[str, Any]] = calls) -> dict[str, Any]:
                calls.append(v)
                return {"ok": True, "metric": -abs(math.log10(1 - v["CONFIG.beta2"]) + 2)}

            peers.PEERS[name].run(peers.Search(dims=list(dims.values()), seed=1, trials=8, budget=9,
                                               goal="maximize", train=train, snap=search.snap,
                                               base_run={"ok": True, "metric": 0.0}))
            betas = sorted(v["CONFIG.beta2"] for v in calls)
            assert all(0.0 <= b <= 0.999 for b in betas), (name, betas)
            assert betas[len(betas) // 2] >= 0.9, (name, betas)  # searched around the committed 0.99, as a β
