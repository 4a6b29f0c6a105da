"""A YAML config the code reads under one key, and the merge keys (`<<: *defaults`) that carry values into that key
from elsewhere in the file. Before, a section picked by a flag (`yaml.safe_load(f)[args.model]`) made every value
outside it "not read" — the defaults it merges included, so the run's epochs were no knob at all — and a section
the code names itself (`yaml.safe_load(f)["small"]`) left the other sections' values looking searchable. Only
static analysis runs here."""

from __future__ import annotations

from collections.abc import Mapping

from nightlab.agent.policy.builtin import BuiltinPolicy

BODY = """\
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["optim"]["momentum"])
for epoch in range(c["epochs"]):
    print(f"val_loss={1.0 / (epoch + 1)}")
"""
CONFIG = """\
defaults: &defaults
  lr: 0.1
  epochs: 10
  optim: &optim
    momentum: 0.9
    nesterov: false
small:
  <<: *defaults
  lr: 0.05
large:
  <<: *defaults
  epochs: 20
tuned:
  <<: *defaults
  optim:
    <<: *optim
    momentum: 0.95
"""
PICKED = ("import argparse\nimport torch\nimport yaml\n\np = argparse.ArgumentParser()\n"
          "p.add_argument('--model', default='small')\na = p.parse_args()\n"
          "c = yaml.safe_load(open('config.yaml'))[a.model]\n" + BODY)
LITERAL = "import torch\nimport yaml\n\nc = yaml.safe_load(open('config.yaml'))['small']\n" + BODY


def _knobs(files: Mapping[str, str], command: str) -> dict[str, tuple[object, bool, str]]:
    got = BuiltinPolicy().knobs_in(files, command=command, metric="val_loss")
    return {k: (v.value, v.searchable, v.why_not) for k, v in got.items()}


def test_a_picked_section_reads_what_it_merges_and_not_what_it_sets_itself() -> None:
    kn = _knobs({"train.py": PICKED, "config.yaml": CONFIG}, "python train.py --model small")
    assert kn["small.lr"][:2] == (0.05, True)
    assert kn["defaults.epochs"][:2] == (10, True)  # small's epochs come from the anchor
    assert kn["defaults.optim.momentum"][:2] == (0.9, True)
    lr = kn["defaults.lr"]
    assert lr[1] is False and lr[2].startswith("overridden by small.lr")
    assert kn["large.epochs"][1] is False and "read under small only" in kn["large.epochs"][2]


def test_a_nested_merge_in_the_section_is_followed() -> None:
    kn = _knobs({"train.py": PICKED, "config.yaml": CONFIG}, "python train.py --model tuned")
    assert kn["tuned.optim.momentum"][:2] == (0.95, True)
    assert kn["defaults.optim.momentum"][1] is False
    assert "tuned.optim.momentum" in kn["defaults.optim.momentum"][2]
    assert kn["defaults.lr"][:2] == (0.1, True) and kn["defaults.epochs"][:2] == (10, True)
    assert kn["small.lr"][1] is False


def test_a_section_the_code_names_leaves_the_others_unread() -> None:
    kn = _knobs({"train.py": LITERAL, "config.yaml": CONFIG}, "python train.py")
    assert kn["small.lr"][:2] == (0.05, True)
    assert kn["defaults.epochs"][:2] == (10, True)
    assert kn["defaults.lr"][1] is False
    assert kn["large.epochs"][1] is False and "the key the code reads it under" in kn["large.epochs"][2]
    assert kn["tuned.optim.momentum"][1] is False


def test_reads_of_two_keys_or_of_a_key_the_file_lacks_pick_no_section() -> None:
    two = LITERAL.replace("c = yaml.safe_load(open('config.yaml'))['small']",
                          "doc = yaml.safe_load(open('config.yaml'))\nc = doc['small']\nbig = doc['large']")
    kn = _knobs({"train.py": two, "config.yaml": CONFIG}, "python train.py")
    assert kn["large.epochs"][1] is True and kn["small.lr"][1] is True
    missing = LITERAL.replace("['small']", "['train']")
    kn = _knobs({"train.py": missing, "config.yaml": CONFIG}, "python train.py")
    assert kn["small.lr"][1] is True and kn["defaults.lr"][1] is True
