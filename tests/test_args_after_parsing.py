"""What argparse reads, after and around `parse_args`: a parser's `set_defaults` over its arguments' defaults, an
attribute of the parsed arguments set to a literal after parsing (`args.lr = 0.02`), and a script (often one
exported from a notebook) that parses a fixed list instead of the command line. In each the value written in one
place is not the one the run uses; the search must move the one it uses, and never spend a run on the other."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from nightlab.agent.policy.builtin import BuiltinPolicy

HEAD = """\
import argparse
import torch

p = argparse.ArgumentParser()
p.add_argument('--lr', type=float, default=0.1)
p.add_argument('--epochs', type=int, default=10)
p.add_argument('--wd', '--weight-decay', type=float, default=0.0, dest='weight_decay')
p.add_argument('--batch_size', type=int, default=32)
"""
BODY = """
m = torch.nn.Linear(4, 2)
o = torch.optim.SGD(m.parameters(), lr=args.lr, weight_decay=args.weight_decay)
for e in range(args.epochs):
    print(f"val_loss={1.0 / (e + 1)}", args.batch_size)
"""


def _knobs(middle: str, command: str = "python train.py") -> dict[str, tuple[object, bool, str]]:
    files: Mapping[str, str] = {"train.py": HEAD + middle + BODY}
    got = BuiltinPolicy().knobs_in(files, command=command, metric="val_loss")
    return {k: (v.value, v.searchable, v.why_not) for k, v in got.items()}


def test_set_defaults_wins_over_an_argument_s_default_and_the_command_over_both() -> None:
    kn = _knobs("p.set_defaults(lr=0.01, weight_decay=5e-4)\nargs = p.parse_args()\n")
    assert kn["set_defaults.lr"][:2] == (0.01, True) and kn["set_defaults.weight_decay"][:2] == (5e-4, True)
    assert kn["--lr"][1] is False and "set_defaults" in kn["--lr"][2]
    assert kn["--wd"][1] is False and "set_defaults" in kn["--wd"][2]  # by its dest
    assert kn["--epochs"][:2] == (10, True)
    kn = _knobs("p.set_defaults(lr=0.01)\nargs = p.parse_args()\n", "python train.py --lr 0.5")
    assert kn["command:--lr"][:2] == (0.5, True)
    assert kn["set_defaults.lr"][1] is False and kn["set_defaults.lr"][2] == "overridden by --lr on the command line"


@pytest.mark.parametrize("where", ["module", "main"])
def test_a_literal_set_after_parsing_is_the_setting(where: str) -> None:
    middle = "args = p.parse_args()\nargs.lr = 0.02\nargs.weight_decay = 1e-4\n"
    if where == "main":
        middle = "def main():\n    args = p.parse_args()\n    args.lr = 0.02\n    args.weight_decay = 1e-4\n" \
                 "    return args\n\n\nargs = main()\n"
    kn = _knobs(middle, "python train.py --lr 0.5 --weight-decay 0.01 --epochs 3")
    assert kn["args.lr" if where == "module" else "main.args.lr"][:2] == (0.02, True)
    for dead in ("--lr", "command:--lr", "command:--weight-decay", "--wd"):
        assert kn[dead][1] is False and "after the arguments are parsed" in kn[dead][2], dead
    assert kn["command:--epochs"][:2] == (3, True)


def test_a_value_set_under_a_condition_or_from_the_setting_itself_leaves_the_setting_alone() -> None:
    kn = _knobs("args = p.parse_args()\nif args.batch_size > 64:\n    args.lr = 0.02\nargs.epochs = args.epochs * 2\n",
                "python train.py --lr 0.5 --epochs 3")
    assert kn["command:--lr"][:2] == (0.5, True) and kn["command:--epochs"][:2] == (3, True)


def test_a_script_that_parses_a_fixed_list_never_reads_the_command_line() -> None:
    kn = _knobs("args = p.parse_args(['--lr', '0.05', '--epoch=3'])\n", "python train.py --batch_size 8")
    assert kn["command:--batch_size"][1] is False and "parses a fixed list" in kn["command:--batch_size"][2]
    assert kn["--batch_size"][:2] == (32, True)  # the default is what runs
    assert kn["--lr"][1] is False and "the code parses that list" in kn["--lr"][2]
    assert kn["--epochs"][1] is False  # `--epoch=3` is argparse's prefix of --epochs
    kn = _knobs("args = p.parse_args(args=[])\n", "python train.py --lr 0.3")  # a notebook's `args=[]`
    assert kn["--lr"][:2] == (0.1, True) and kn["command:--lr"][1] is False
    # parsing the command line somewhere (or a list built at run time) is no fixed list
    kn = _knobs("import sys\nargs = p.parse_args(sys.argv[1:])\n", "python train.py --lr 0.3")
    assert kn["command:--lr"][:2] == (0.3, True) and kn["--lr"][1] is False


LOOP = """
m = torch.nn.Linear(4, 2)
o = torch.optim.SGD(m.parameters(), lr=C["lr"])
for e in range(C["epochs"]):
    print(f"val_loss={1.0 / (e + 1)}", C["batch_size"])
"""


def _code_knobs(text: str) -> dict[str, tuple[object, bool, str]]:
    got = BuiltinPolicy().knobs_in({"train.py": text}, command="python train.py", metric="val_loss")
    return {k: (v.value, v.searchable, v.why_not) for k, v in got.items()}


def test_a_dict_key_written_again_later_is_not_the_setting_that_runs() -> None:
    head = "import torch\nC = {'lr': 0.1, 'epochs': 10, 'batch_size': 32}\n"
    kn = _code_knobs(head + "C['lr'] = 0.05\n" + LOOP)
    assert kn["C.lr"][1] is False and "C['lr'] = 0.05" in kn["C.lr"][2]
    assert kn["C.epochs"][:2] == (10, True)
    kn = _code_knobs(head + "C.update(epochs=3, batch_size=C['batch_size'] * 2)\n" + LOOP)
    assert kn["C.epochs"][1] is False and kn["update.epochs"][:2] == (3, True)
    assert kn["C.batch_size"][:2] == (32, True)  # scaled from itself: the literal still counts
    # under a condition, or before the literal, it does not override it
    kn = _code_knobs(head.replace("C = {", "import sys\nC = {") + "if 'debug' in sys.argv:\n    C['epochs'] = 1\n"
                     + LOOP)
    assert kn["C.epochs"][:2] == (10, True)


def test_a_field_set_on_the_instance_overrides_the_class_s_default() -> None:
    text = """\
import dataclasses
import torch


@dataclasses.dataclass
class TrainConfig:
    lr: float = 0.1
    epochs: int = 10


def main():
    cfg = TrainConfig()
    cfg.lr = 0.05
    m = torch.nn.Linear(4, 2)
    o = torch.optim.SGD(m.parameters(), lr=cfg.lr)
    for e in range(cfg.epochs):
        print(f"val_loss={1.0 / (e + 1)}")


main()
"""
    kn = _code_knobs(text)
    assert kn["TrainConfig.lr"][1] is False and "cfg.lr = 0.05" in kn["TrainConfig.lr"][2]
    assert kn["TrainConfig.epochs"][:2] == (10, True)
    assert kn["main.cfg.lr"][:2] == (0.05, True)
