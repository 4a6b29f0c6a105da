"""Every proposal gets its own run-time prediction where the code allows: a change of the code (a transform, a
repair, a language model's edit) is priced by the model's cost read from the code after the edit over before it,
scaled from its parent's measured time; only where the structure cannot be read does the parent's time stand, and
the record says so."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from test_builtin_policy import Tree, view

from nightlab.agent.config import MetricConfig, load_config
from nightlab.agent.engine import Engine, EngineOptions
from nightlab.agent.policy import cost_model as costmod
from nightlab.agent.policy import depth
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.proposal import Edit, PolicyContext, Proposal
from nightlab.agent.states import Pricing, Status
from nightlab.agent.time_budget import TimeBudget

from helpers import TINY_TRAIN, ScriptedPolicy, git, make_repo, write_config

# a model in a package module: two Linear layers as wide as the input, so one more hidden layer doubles the compute
RING_MODEL = '''\
"""The classifier for the rings task: an MLP over the 256 ring features."""
import torch.nn as nn

FEATURES = 256
HIDDEN = 256
CLASSES = 2


def build():
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
'''

RING_TRAIN = '''\
"""Train the rings classifier."""
import argparse

import torch
import torch.nn.functional as F

from rings.model import FEATURES, build

EPOCHS = 30
LEARNING_RATE = 0.01


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    x = torch.randn(4096, FEATURES)
    y = (x[:, 0] > 0).long()
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    for epoch in range(EPOCHS):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"epoch {epoch + 1} train_loss {loss.item():.4f}")
    print(f"accuracy={(model(x).argmax(1) == y).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
'''

UNDERFITTING = [2.0 - 0.04 * i for i in range(16)]  # high and still falling


def rings_tree(seconds: float) -> Tree:
    tree = Tree({"rings/__init__.py": "", "rings/model.py": RING_MODEL, "train.py": RING_TRAIN})
    tree.add(view(1, kind="baseline", metric=0.5, loss=UNDERFITTING, seconds=seconds))
    return tree


def test_a_deepened_model_is_priced_at_about_twice_its_parent_and_skipped_when_it_cannot_end_in_time() -> None:
    tree = rings_tree(100.0)
    prop = BuiltinPolicy().propose(tree.ctx())
    assert prop is not None and prop.knobs.get("transform") == depth.NAME, prop.title
    assert prop.priced == Pricing.CODE and prop.predicted_s is not None
    assert abs(prop.predicted_s / 200.0 - 1) < 0.3, prop.predicted_s  # the extra layer doubles the compute

    # time for the parent's run, not for the deepened one: the deepening is skipped (said), a cheaper move goes on
    policy = BuiltinPolicy()
    short = policy.propose(replace(tree.ctx(), time_left_s=150.0))
    assert short is not None and short.knobs.get("transform") != depth.NAME, short.title
    assert short.predicted_s is not None and short.predicted_s <= 150.0
    skipped = dict(policy.unfit)
    assert skipped.get(prop.title, 0.0) > 150.0, skipped


def test_the_cost_of_code_is_read_through_loops_calls_and_convolutions() -> None:
    # nn.Sequential built from a depth count passed by the training script
    model = ('"""A stack of residual-free blocks."""\nimport torch.nn as nn\n\n\n'
             'def build(depth, width=128):\n    layers = [nn.Linear(16, width), nn.ReLU()]\n'
             '    for _ in range(depth):\n        layers += [nn.Linear(width, width), nn.ReLU()]\n'
             '    return nn.Sequential(*layers, nn.Linear(width, 1))\n')
    train = "from stack.model import build\n\nDEPTH = 2\nnet = build(DEPTH)\n"
    deeper = costmod.code_factor([model, train], [model, train.replace("DEPTH = 2", "DEPTH = 6")])
    assert deeper is not None and 2.2 < deeper < 3.6  # 2 -> 6 of the 128-wide blocks, the ends unchanged
    wider = costmod.code_factor([model, train], [model.replace("width=128", "width=256"), train])
    assert wider is not None and 2.5 < wider < 4.0  # the 128-wide layers ~4x, each call's fixed cost not
    # a conv net: the channels doubled on both sides of the 3x3 convolutions
    conv = ('import torch.nn as nn\nC = 32\n'
            'net = nn.Sequential(nn.Conv2d(3, C, 3), nn.ReLU(), nn.Conv2d(C, C, 3), nn.ReLU(),\n'
            '                    *[nn.Conv2d(C, C, 3) for _ in range(2)], nn.Flatten(), nn.LazyLinear(10))\n')
    got = costmod.code_factor([conv], [conv.replace("C = 32", "C = 64")])
    assert got is not None and 3.0 < got < 4.2
    # no layer the cost model knows, or code that does not parse: nothing to read
    assert costmod.code_factor([TINY_TRAIN], [TINY_TRAIN.replace("LR = 0.05", "LR = 0.1")]) is None
    assert costmod.code_factor([conv], ["def broken(:\n"]) is None


def test_an_edit_whose_structure_cannot_be_read_is_priced_at_its_parents_time_and_says_so() -> None:
    tree = Tree({"train.py": TINY_TRAIN})
    tree.add(view(1, kind="baseline", metric=0.5, seconds=40.0))
    got = BuiltinPolicy().predict_edits(tree.ctx(), 1, [Edit("train.py", "EPOCHS = 3", "EPOCHS = 6")])
    assert got == (None, Pricing.PARENT)


def test_a_repair_of_a_failed_run_is_priced_from_the_last_run_that_ended_not_from_the_crash() -> None:
    """A crash after 2 s says nothing of how long the repaired run takes: the repair is priced from the nearest
    ancestor that ran to its end (100 s here), by the cost of its code against the failed code with the repair."""
    tree = rings_tree(100.0)
    broken = {**tree.files[1], "rings/model.py": RING_MODEL.replace("nn.ReLU(), nn.Linear(HIDDEN, CLASSES)",
                                                                    "nn.ReLU(), nn.Linear(FEATURES, CLASSES)")}
    tree.add(view(2, 1, kind="code", metric=None, result="failed", failure="shape", seconds=2.0), broken)
    fix = [Edit("rings/model.py", "nn.Linear(FEATURES, CLASSES)", "nn.Linear(HIDDEN, CLASSES)")]
    got = BuiltinPolicy().predict_edits(tree.ctx(), 2, fix)
    assert got[1] == Pricing.CODE and got[0] is not None and abs(got[0] / 100.0 - 1) < 0.1, got
    # a repair that also deepens the model is priced as the deeper model from the run that ended
    deeper = [Edit("rings/model.py", "nn.ReLU(), nn.Linear(FEATURES, CLASSES)",
                   "nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES)")]
    got = BuiltinPolicy().predict_edits(tree.ctx(), 2, deeper)
    assert got[1] == Pricing.CODE and got[0] is not None and abs(got[0] / 200.0 - 1) < 0.3, got
    # nothing ever ran to its end: nothing to scale
    first = Tree({"train.py": TINY_TRAIN})
    first.add(view(1, kind="baseline", metric=None, result="failed", seconds=1.0))
    assert BuiltinPolicy().predict_edits(first.ctx(), 1, [Edit("train.py", "EPOCHS = 3", "EPOCHS = 6")]) == \
        (None, None)


class Widening(ScriptedPolicy):
    """A language model's answer as an edit: it widens the hidden layer and says nothing of the run time."""

    name = "scripted-llm"

    def __init__(self) -> None:
        super().__init__([])
        self.done = False

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if self.done:
            return None
        self.done = True
        return Proposal(title="widen the hidden layer to 1024", rationale="more capacity", parent_id=ctx.baseline_id,
                        edits=[Edit("rings/model.py", "HIDDEN = 256", "HIDDEN = 1024")])


def test_a_language_models_edit_gets_its_own_prediction_and_a_deadline_judges_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {"rings/__init__.py": "", "rings/model.py": RING_MODEL, "train.py": RING_TRAIN})
    write_config(repo, metric=MetricConfig(name="accuracy", goal="maximize"), editable=["train.py", "rings/model.py"])
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    eng = Engine(repo, load_config(repo), policy=Widening(),
                 options=EngineOptions(mode="autonomous", budget=2, poll_s=0.1))
    eng.run()
    base = eng.store.experiment(1)
    wide = next(e for e in eng.store.experiments() if e.title.startswith("widen"))
    assert base.seconds and wide.predicted_s is not None and wide.priced == Pricing.CODE
    # the progress hook timed the torch job: its start-up and the rest, which a longer training would not lengthen
    assert base.fixed_s is not None and 0 < base.fixed_s <= base.seconds, (base.fixed_s, base.seconds)
    # 4x the hidden width: both Linear layers' compute grows about 4x (the output layer is tiny)
    factor = costmod.code_factor([RING_MODEL], [RING_MODEL.replace("HIDDEN = 256", "HIDDEN = 1024")])
    assert factor is not None and 3.0 < factor < 4.2
    # its own prediction, not its parent's time: the widened layers' share of the run grows ~3.6x; the start-up,
    # most of this short run, does not
    # (the seconds are wall time on a shared machine: the start-up alone moves by a tenth from run to run)
    assert wide.predicted_s > 0.9 * base.seconds and wide.seconds
    assert abs(wide.predicted_s / wide.seconds - 1) < 0.5, (wide.predicted_s, wide.seconds, base.seconds)
    said = next(json.loads(e["data"]) for e in eng.store.events()
                if e["kind"] == "proposed" and e["experiment_id"] == wide.id)
    assert said["priced"] == "code" and said["predicted_s"] == wide.predicted_s
    # a deadline that leaves the parent's run time but not the wider one's: it is the wider run that is not started
    clock = TimeBudget(eng.store, deadline=None, max_cpu_hours=None, max_gpu_hours=None)
    # (the parent's own measured wall clock: `predict(base)` is the median over both runs, and the wider one's
    # measured time, not its prediction, moves with the machine's load)
    parent_needs = max((j.ended or 0.0) - (j.started or 0.0) for j in eng.store.jobs(experiment_id=base.id))
    wide_needs = clock.predict(wide) or 0.0
    assert wide_needs > parent_needs, (wide_needs, parent_needs, wide.predicted_s, base.seconds, base.fixed_s)
    clock.deadline = 1000.0 + (parent_needs + wide_needs) / 2
    waiting = replace(wide, status=Status.QUEUED)
    why = clock.blocks(waiting, 1, now=1000.0)
    assert why is not None and "predicted to take" in why


# nanoGPT's shape: every size and the block count come from a config object the code cannot read
CONFIG_MODEL = """import torch.nn as nn
from dataclasses import dataclass

@dataclass
class GPTConfig:
    n_layer: int = 12
    n_embd: int = 768

class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.head = nn.Linear(config.n_embd, 65)
"""


def test_a_change_hidden_in_what_the_code_cannot_read_is_not_priced_as_no_change() -> None:
    """Doubling `n_layer` in a config dataclass moves no size the cost model can read (they stand at its default on
    both sides): that is no answer (None: the parent's time, said as such), not a factor of 1 called 'code'. A change
    the code does show is still priced, and a change of nothing structural still reads as 1."""
    deeper = CONFIG_MODEL.replace("n_layer: int = 12", "n_layer: int = 24")
    assert costmod.code_factor([CONFIG_MODEL], [deeper]) is None
    readable = "import torch.nn as nn\nH = 256\nnet = nn.Sequential(nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 2))\n"
    assert costmod.code_factor([readable], [readable.replace("ReLU", "GELU")]) == 1.0
    factor = costmod.code_factor([readable], [readable.replace("H = 256", "H = 512")])
    assert factor is not None and factor > 2


# nanoGPT's shape as a project: train.py's globals are the defaults, an exec'd config file (named on the command line)
# overrides them, GPTConfig(**model_args) carries them into model.py, where every size reads `config.<field>`
GPT_TRAIN = '''\
"""Train a small GPT."""
import sys

from model import GPT, GPTConfig

n_layer = 12
n_embd = 768
block_size = 1024
max_iters = 2000
exec(open(sys.argv[1]).read())
model_args = dict(n_layer=n_layer, n_embd=n_embd, block_size=block_size)
model = GPT(GPTConfig(**model_args))
for it in range(max_iters):
    pass
print(f"val_loss={1.0:.4f}")
'''

GPT_CONFIG = "n_layer = 2\nn_embd = 64\nblock_size = 64\nmax_iters = 200\n"

GPT_MODEL = CONFIG_MODEL.replace("        self.head = nn.Linear(config.n_embd, 65)\n",
                                 "        self.wpe = nn.Embedding(config.block_size, config.n_embd)\n"
                                 "        self.head = nn.Linear(config.n_embd, 65)\n")


def gpt_tree(seconds: float) -> Tree:
    tree = Tree({"train.py": GPT_TRAIN, "model.py": GPT_MODEL, "config/small.py": GPT_CONFIG}, goal="minimize")
    tree.add(view(1, kind="baseline", metric=2.5, seconds=seconds))
    return tree


def gpt_ctx(tree: Tree) -> PolicyContext:
    return replace(tree.ctx(), metric="val_loss", command="python train.py config/small.py",
                   tracked=["train.py", "model.py", "config/small.py"])


def test_a_model_sized_from_a_config_object_is_priced_with_the_values_the_config_file_sets() -> None:
    """model.py reads every size from `config.<field>`; the values that take effect are the config file's (n_embd 64,
    2 blocks), not train.py's defaults (768, 12) nor the dataclass's. A language model's edit that doubles the MLP's
    inner width is priced from them: the two MLP layers are most of a block, so the step costs a bit under 2x."""
    tree = gpt_tree(100.0)
    ctx = gpt_ctx(tree)
    wider_mlp = [Edit("model.py", "self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)",
                      "self.fc = nn.Linear(config.n_embd, 8 * config.n_embd)"),
                 Edit("model.py", "self.proj = nn.Linear(4 * config.n_embd, config.n_embd)",
                      "self.proj = nn.Linear(8 * config.n_embd, config.n_embd)")]
    got, how = BuiltinPolicy().predict_edits(ctx, 1, wider_mlp)
    # per sample at n_embd 64: two blocks of 2 * 64 * 256 multiply-adds, a 64 x 65 head, a 64-wide position table
    # (and each layer's fixed cost per call); doubling the MLP's inner width doubles the blocks' part
    blocks, head, wpe = 2 * 2 * 64 * 256, 64 * 65, 64
    call = costmod.CALL_COST / costmod.DEFAULT_BATCH
    before = blocks + head + wpe + 6 * call
    expected = 100.0 * (2 * blocks + head + wpe + 6 * call) / before
    assert how == Pricing.CODE and got is not None, (got, how)
    assert abs(got / expected - 1) < 0.15, (got, expected)
    # read with train.py's defaults (768 wide, 12 blocks) the arithmetic would swamp the fixed costs: nearer 2x
    assert got < 100.0 * 1.9

    # the config file's block count doubled by an edit: priced from the values after it, about twice the blocks
    deeper, how = BuiltinPolicy().predict_edits(ctx, 1, [Edit("config/small.py", "n_layer = 2", "n_layer = 4")])
    assert how == Pricing.CODE and deeper is not None and 1.4 < deeper / 100.0 < 2.1, deeper
    # train.py's default is overridden by the config file: changing it changes nothing that runs
    idle, how = BuiltinPolicy().predict_edits(ctx, 1, [Edit("train.py", "n_layer = 12", "n_layer = 24")])
    assert idle is None or abs(idle / 100.0 - 1) < 0.05, (idle, how)


def test_layers_count_as_often_as_the_code_builds_the_class_they_sit_in() -> None:
    """Block's layers are built n_layer times (a comprehension in GPT, itself built once); a script that builds its
    model a second time (an evaluation copy) does not train twice as much; a block count no setting names is unread."""
    known = {"n_layer": 3, "n_embd": 32}
    script = "cfg = GPTConfig()\nmodel = GPT(cfg)\n"
    once = costmod.model_layers([CONFIG_MODEL, script], known=known)
    assert once is not None
    counts = sorted(times for _, times in once)
    assert counts == [1.0, 3.0, 3.0], counts  # the head once, each of Block's two layers three times
    twice = costmod.model_layers([CONFIG_MODEL, script + "ema = GPT(cfg)\n"], known=known)
    assert twice is not None and sorted(times for _, times in twice) == counts
    unread = costmod.model_layers([CONFIG_MODEL, script], known={"n_embd": 32})
    assert unread is not None and sorted(times for _, times in unread) == [1.0, 1.0, 1.0]
