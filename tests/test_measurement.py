"""What a run counts as: evaluation code found by what it computes, "no effect" runs, seeds, a command promoted.

The evaluation tests use a script in the shape of a held-out transformer repository: its evaluation function sits
under a comment header marked "(fixed)" and the optimizer and the step count come after it, in main(). A rule keyed
on that header froze the whole file; nothing here may depend on comments.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nightlab.agent import outcome
from nightlab.agent.config import MetricConfig, ProjectConfig, dump_config, set_command
from nightlab.agent.edits import apply_edits
from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.base import ExperimentView, PolicyContext
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.evaluation import evaluation_functions, fixed_lines
from nightlab.agent.seeding import SeedRoute, plan_seeding

from helpers import git, make_repo

HELD_OUT_SHAPE = '''\
"""A tiny transformer learning to copy a sequence shifted by one (synthetic data)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 12
SEQ = 10


def make_batch(gen, n=32):
    x = torch.randint(0, VOCAB, (n, SEQ), generator=gen)
    return x, torch.roll(x, 1, dims=1)


class TinyTransformer(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.zeros(SEQ, d))
        self.block = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, x):
        return self.head(self.block(self.emb(x) + self.pos))


# ------------------------------------------------------------------------------------------
# evaluation (fixed)
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, gen):
    model.eval()
    x, y = make_batch(gen, 256)
    loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
    model.train()
    return loss.item()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = TinyTransformer()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for step in range(60):
        x, y = make_batch(gen)
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 15 == 0:
            print(f"step {step} train loss {loss.item():.4f}")
    test_loss = evaluate(model, torch.Generator().manual_seed(123))
    print(f"test loss {test_loss:.4f}")


if __name__ == "__main__":
    main()
'''


def _line(text: str, start: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(start))


def test_evaluation_is_what_computes_the_metric_not_what_a_comment_says() -> None:
    assert evaluation_functions({"train.py": HELD_OUT_SHAPE}, "test loss") == {"evaluate"}
    fixed = fixed_lines(HELD_OUT_SHAPE, {"evaluate"})
    assert _line(HELD_OUT_SHAPE, "loss = F.cross_entropy(model(x)") in fixed  # the evaluation's body
    for start in ("def main", "optimizer = torch.optim.SGD", "for step in range(60)", "optimizer.step()"):
        assert _line(HELD_OUT_SHAPE, start) not in fixed, start
    # a function that trains is never evaluation, whatever its name; a shared batching helper is not either
    both = HELD_OUT_SHAPE.replace("def main():", "def train_and_evaluate():").replace("    main()", "    "
                                                                                     "train_and_evaluate()")
    assert evaluation_functions({"train.py": both}, "test loss") == {"evaluate"}
    # the metric computed by a function with an unremarkable name is found through what the print reports
    renamed = HELD_OUT_SHAPE.replace("evaluate(", "held_out_xent(")
    assert evaluation_functions({"train.py": renamed}, "test loss") == {"held_out_xent"}


def test_the_policy_tunes_the_optimizer_and_steps_below_a_fixed_evaluation_header(tmp_path: Path) -> None:
    files = {"train.py": HELD_OUT_SHAPE}
    base = ExperimentView(id=1, parent_id=None, title="baseline", kind="baseline", status="kept",
                          run_result="succeeded", metric=2.3, curve=[], loss_curve=[(0, 2.5), (30, 2.45), (60, 2.42),
                                                                                    (90, 2.4), (120, 2.39)],
                          knobs={}, failure_class=None, diagnosis=None, log_tail="", seed=0, seconds=3.0)
    ctx = PolicyContext(root=str(tmp_path), metric="test loss", goal="minimize", editable=["train.py"], protected=[],
                        experiments=[base], best_id=1, baseline_id=1, noise_floor=0.0, brief="", timeout_s=600,
                        runs_left=10, read_file=lambda i, p: files.get(p, ""), rng=random.Random(0),
                        command="python train.py", tracked=["train.py"])
    policy = BuiltinPolicy()
    st = policy._state(ctx, 1)
    searchable = {k for k, v in st.knobs.items() if v.searchable}
    assert {"SGD.lr", "steps"} <= searchable
    prop = policy.propose(ctx)
    assert prop is not None  # not "nothing left to try" right after the baseline
    new = {**files, **apply_edits(prop.edits, lambda p: files.get(p), ["train.py"], [])}["train.py"]
    evaluate_src = HELD_OUT_SHAPE[HELD_OUT_SHAPE.index("@torch.no_grad()"):HELD_OUT_SHAPE.index("def main")]
    assert evaluate_src in new  # the evaluation is untouched
    adamw = tf.sgd_to_adamw(HELD_OUT_SHAPE, "train.py", lr=3e-3, evaluation={"evaluate"})
    assert adamw is not None and evaluate_src in adamw.new_text
    # and the change moves the metric: run both (torch, one thread, a few seconds)
    losses = []
    for text in (HELD_OUT_SHAPE, adamw.new_text):
        (tmp_path / "train.py").write_text(text)
        proc = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        losses.append(float(proc.stdout.strip().splitlines()[-1].split()[-1]))
    assert losses[1] < losses[0] - 0.1, losses


# ----------------------------------------------------------------------------------------------- no effect


def test_identical_runs_have_one_digest_up_to_timings_and_a_bare_metric_tells_nothing() -> None:
    a = "step 0: loss 4.18, time 2697.62ms, mfu -100.00%\n100%|####| 300/300 [00:02<00:00, 120.5it/s]\n" \
        "iter 50: loss 2.98, time 18.96ms\n2026-12-03 10:01:02 saved to /tmp/x/.nightlab/worktrees/7/out\n" \
        "val loss 2.5246\n"
    b = a.replace("2697.62ms", "311.8ms").replace("18.96", "21.04").replace("120.5it/s", "98.1it/s") \
        .replace("10:01:02", "10:07:55").replace("worktrees/7", "worktrees/12")
    assert outcome.digest(a) is not None and outcome.digest(a) == outcome.digest(b)
    assert outcome.digest(a) != outcome.digest(a.replace("loss 2.98", "loss 2.97"))
    assert outcome.digest("accuracy: 0.6944\n") is None  # too little output to call two runs the same


# ----------------------------------------------------------------------------------------------- seeds


def _plan(files: dict[str, str], command: str, metric: str = "val_loss") -> tuple[object, dict[str, str]]:
    plan = plan_seeding(command, lambda p: files.get(p, ""), lambda p: p in files, sorted(files), metric)
    return plan, files


def test_seeds_are_passed_where_the_code_takes_them_and_changed_where_it_fixes_them() -> None:
    argp = {"train.py": "import argparse\np = argparse.ArgumentParser()\np.add_argument('--seed', type=int, "
                        "default=42)\nargs = p.parse_args()\n"}
    plan = plan_seeding("python train.py --epochs 3", lambda p: argp.get(p, ""), lambda p: p in argp,
                        sorted(argp), "loss")
    assert plan.route is SeedRoute.ARGUMENT and plan.default == 42
    assert plan.command("python train.py --epochs 3", 0, 0) == "python train.py --epochs 3"  # the baseline as is
    assert plan.command("python train.py --epochs 3", 2, 0) == "python train.py --epochs 3 --seed=44"
    fixed = {"train.py": "import random\nimport numpy as np\nSEED = 7\nrandom.seed(SEED)\nnp.random.seed(SEED)\n"
                         "def load_data():\n    rng = np.random.default_rng(123)\n    return rng\n"}
    plan = plan_seeding("python train.py", lambda p: fixed.get(p, ""), lambda p: p in fixed, sorted(fixed), "loss")
    assert plan.route is SeedRoute.CODE and plan.default == 7
    new = plan.edits(lambda p: fixed[p], 1, 0)["train.py"]
    assert "SEED = 8" in new and "default_rng(123)" in new  # the data's own generator is left alone
    none = {"train.py": "print('loss 1.0')\n"}
    plan = plan_seeding("python train.py", lambda p: none.get(p, ""), lambda p: p in none, sorted(none), "loss")
    assert plan.route is SeedRoute.NONE and not plan.varies and "deterministic" in plan.how
    assert plan_seeding("python train.py --seed {seed}", lambda p: "", lambda p: False).route \
        is SeedRoute.PLACEHOLDER


# ----------------------------------------------------------------------------------------------- the command


def test_set_command_rewrites_only_the_command_in_either_config_file(tmp_path: Path) -> None:
    toml = tmp_path / "nightlab.toml"
    toml.write_text('# mine\ncommand = "python main.py --epochs 1"  # keep\ntimeout = 60\n\n[metric]\n'
                    'name = "loss"\ngoal = "minimize"\n')
    set_command(toml, 'python main.py --epochs 3 --note "a b"')
    text = toml.read_text()
    assert text.startswith("# mine\n") and "# keep" in text and "[metric]" in text
    assert tomllib.loads(text)["command"] == 'python main.py --epochs 3 --note "a b"'
    py = tmp_path / "pyproject.toml"
    py.write_text('[project]\nname = "x"\ncommand = "not this"\n\n[tool.nightlab]\ncommand = "python t.py"\n'
                  '[tool.nightlab.metric]\nname = "loss"\ngoal = "minimize"\n')
    set_command(py, "python t.py --lr 0.1")
    data = tomllib.loads(py.read_text())
    assert data["tool"]["nightlab"]["command"] == "python t.py --lr 0.1" and data["project"]["command"] == "not this"


def test_a_command_only_experiment_is_promoted_into_an_untracked_config(tmp_path: Path) -> None:
    from nightlab.agent.engine import open_store
    from nightlab.agent.promote import promote_experiment, promote_preview

    repo = make_repo(tmp_path / "p", {"main.py": "print('loss 1.0')\n"})
    cfg = ProjectConfig(command="python main.py --epochs 1", metric=MetricConfig(name="loss", goal="minimize"))
    (repo / "nightlab.toml").write_text(dump_config(cfg))  # untracked, as `nightlab init` leaves it
    head = git(repo, "rev-parse", "HEAD").strip()
    store = open_store(repo)
    base = store.add_experiment(kind="baseline", status="kept", run_result="succeeded", commit_sha=head)
    e = store.add_experiment(parent_id=base.id, kind="hyperparameter", status="kept", run_result="succeeded",
                             commit_sha=head, title="raise command:--epochs from 1 to 3",
                             command="python main.py --epochs 3")
    pv = promote_preview(repo, store, e)
    assert pv.files == [] and pv.command == ("python main.py --epochs 1", "python main.py --epochs 3")
    assert "+ python main.py --epochs 3" in pv.command_text()
    promote_experiment(repo, store, e, who="test")
    assert tomllib.loads((repo / "nightlab.toml").read_text())["command"] == "python main.py --epochs 3"
    assert git(repo, "rev-parse", "HEAD").strip() == head  # nothing to commit: the config is not tracked
    assert store.experiment(e.id).status == "promoted"


# ----------------------------------------------------------------------------------------------- paired judgement

SEED_COUPLED = '''\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
seed = p.parse_args().seed
LR = 0.1
shared = {0: 0.0, 1: 0.08, 2: -0.05}[seed]  # what the seed does to every configuration alike
own = {0: 0.001, 1: -0.001, 2: 0.0}[seed] if LR != 0.1 else 0.0
score = 0.7 + (0.03 if LR == 0.2 else 0.0) + shared + own
for step in range(1, 4):
    print(f"step {step} loss {1.5 - score + 0.1 * (3 - step):.4f}")
print(f"acc={score:.4f}")
'''


def test_paired_gains_and_their_tests() -> None:
    from nightlab.agent import paired

    assert paired.gains({0: 0.71, 1: 0.79}, {0: 0.70, 1: 0.78, 2: 0.6}, 1.0) == pytest.approx([0.01, 0.01])
    assert paired.consistent([0.0119, 0.0137]) and paired.consistent([0.0119, 0.0137, 0.0142], floor=0.01)
    assert not paired.consistent([0.03])  # one seed is not a comparison
    assert not paired.consistent([0.02, -0.001]) and not paired.consistent([0.001, 0.05])  # disagreeing seeds


def test_a_gain_that_every_seed_agrees_on_is_kept_although_the_seed_spread_is_larger(tmp_path: Path) -> None:
    """The seed moves every configuration by up to 0.08 (the noise floor from two baseline seeds is 0.057); raising
    LR gains about 0.03 at each seed. Judged against the seed spread it was discarded; seed by seed it is clear."""
    from nightlab.agent.config import load_config
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.policy.base import Edit, PolicyBase, Proposal

    class Raise(PolicyBase):
        name = "scripted"

        def __init__(self) -> None:
            self.left = ["0.2", "0.3"]

        def propose(self, ctx: PolicyContext) -> Proposal | None:
            if not self.left:
                return None
            v = self.left.pop(0)
            return Proposal(title=f"LR = {v}", rationale="", edits=[Edit("train.py", "LR = 0.1", f"LR = {v}")],
                            parent_id=ctx.baseline_id)

        def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
            return None

    repo = make_repo(tmp_path / "coupled", {"train.py": SEED_COUPLED})
    cfg = ProjectConfig(command=f"{sys.executable} train.py --seed {{seed}}",
                        metric=MetricConfig(name="acc", goal="maximize"), editable=["train.py"], timeout=60)
    (repo / "nightlab.toml").write_text(dump_config(cfg))
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=6), policy=Raise())
    eng.run()
    assert eng.ledger.noise_floor() > 0.05
    by_title = {e.title: e for e in eng.store.experiments() if e.kind == "hyperparameter"}
    good, flat = by_title["LR = 0.2"], by_title["LR = 0.3"]
    assert good.status == "kept", good.error
    assert any("better at each of 2 seeds (+0.0310, +0.0290)" in m for m in
               (ev["message"] for ev in eng.store.events() if ev["kind"] == "kept"))
    assert flat.status == "discarded"  # +0.001 and −0.001: the seeds disagree, and the mean is inside the noise
