"""Options as people write them on a command line: an alias of an option (`--learning-rate` for `--lr`, read by
the code as `args.lr`) and a short option with its value in the same word (`-b32`), on the shape of PyTorch's
ImageNet example (github.com/pytorch/examples, imagenet/main.py). Each is a setting of the run: the search moves it
where it is written, and the default it overrides is no knob to move. Only static analysis runs here."""

from __future__ import annotations

from collections.abc import Mapping

from nightlab.agent.policy import effective as eff
from nightlab.agent.policy.builtin import BuiltinPolicy

IMAGENET_MAIN = """\
import argparse
import torch
import torch.nn as nn

parser = argparse.ArgumentParser(description='PyTorch ImageNet Training')
parser.add_argument('data', metavar='DIR', nargs='?', default='imagenet', help='path to dataset')
parser.add_argument('-a', '--arch', metavar='ARCH', default='resnet18')
parser.add_argument('-j', '--workers', default=4, type=int, metavar='N')
parser.add_argument('--epochs', default=90, type=int, metavar='N', help='number of total epochs to run')
parser.add_argument('-b', '--batch-size', default=256, type=int, metavar='N', help='mini-batch size (default: 256)')
parser.add_argument('--lr', '--learning-rate', default=0.1, type=float, metavar='LR', help='initial learning rate',
                    dest='lr')
parser.add_argument('--momentum', default=0.9, type=float, metavar='M')
parser.add_argument('--wd', '--weight-decay', default=1e-4, type=float, metavar='W', dest='weight_decay')
parser.add_argument('-lrd', type=float, default=0.0, help='a single-dash option of its own, not -l with "rd"')


def main():
    args = parser.parse_args()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    for epoch in range(args.epochs):
        for _ in range(100 // args.batch_size + 1):
            loss = model(torch.randn(args.batch_size, 10)).pow(2).mean() * (1 + args.lrd)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"Epoch {epoch} Acc@1 {50.0:.3f}")


if __name__ == '__main__':
    main()
"""
FILES = {"main.py": IMAGENET_MAIN}


def _knobs(command: str, files: Mapping[str, str] = FILES) -> dict[str, tuple[object, bool, str]]:
    got = BuiltinPolicy().knobs_in(files, command=command, metric="Acc@1")
    return {k: (v.value, v.searchable, v.why_not) for k, v in got.items()}


def test_an_alias_on_the_command_line_is_the_setting_the_code_reads_by_its_dest() -> None:
    kn = _knobs("python main.py --learning-rate 0.05 --weight-decay 5e-4 data")
    assert kn["command:--learning-rate"][:2] == (0.05, True)
    assert kn["command:--weight-decay"][:2] == (5e-4, True)
    assert kn["--lr"][1] is False and "overridden by --learning-rate" in kn["--lr"][2]
    assert kn["--wd"][1] is False
    # read by its dest, not its declaration: with `args.lr` gone the alias sets nothing the code uses
    dead = {"main.py": IMAGENET_MAIN.replace("model.parameters(), args.lr,", "model.parameters(), 0.1,")}
    value, searchable, why = _knobs("python main.py --learning-rate 0.05 data", dead)["command:--learning-rate"]
    assert (value, searchable, why) == (0.05, False, "not used by the code")


def test_a_short_option_with_its_value_in_the_same_word_is_a_setting() -> None:
    kn = _knobs("python main.py -b32 -j2 --lr 0.05 data")
    assert kn["command:-b"][:2] == (32, True)
    assert kn["--batch-size"][1] is False and "overridden by -b" in kn["--batch-size"][2]
    assert kn["command:-j"][1] is False  # the loader's workers: never searched
    # a single-dash option the code declares whole is not a short option with a value
    kn = _knobs("python main.py -lrd 0.5 data")
    assert kn["command:-lrd"][:2] == (0.5, True) and "command:-l" not in kn


def test_the_search_writes_the_value_where_it_is_written() -> None:
    policy = BuiltinPolicy()
    command = "python main.py -b32 --learning-rate 0.05 data"
    knobs = policy.search_knobs(FILES, command=command, metric="Acc@1")
    keys = {k.key for k in knobs}
    assert {"command:-b", "command:--learning-rate"} <= keys and "--batch-size" not in keys and "--lr" not in keys
    files, new = policy.write_values(FILES, command, knobs, {"command:-b": 64, "command:--learning-rate": 0.1})
    assert new == "python main.py -b64 --learning-rate 0.1 data" and files == FILES
    inv = eff.analyse(new, lambda p: FILES.get(p, ""), lambda p: p in FILES, sorted(FILES)).invocation
    assert inv is not None and inv.arg("-b") is not None and inv.arg("-b").value == 64  # type: ignore[union-attr]


ABBREV = """\
import argparse
import torch

p = argparse.ArgumentParser()
p.add_argument('--learning_rate', type=float, default=0.1)
p.add_argument('--epochs', type=int, default=10)
p.add_argument('--batch_size', type=int, default=32)
p.add_argument('--beta', type=float, default=0.9)
args = p.parse_args()
m = torch.nn.Linear(4, 2)
o = torch.optim.Adam(m.parameters(), lr=args.learning_rate, betas=(args.beta, 0.999))
for e in range(args.epochs):
    print(f"val_loss={1.0 / (e + 1)}", args.batch_size)
"""


def test_a_prefix_of_an_argparse_option_sets_it_as_argparse_reads_it() -> None:
    """argparse reads any unique prefix of a long option (`--epoch 3` sets `--epochs`): the default is overridden
    there, and moving it would change nothing; the word on the command line is the setting."""
    files = {"train.py": ABBREV}
    kn = _knobs("python train.py --epoch 3 --learn 0.05", files)
    assert kn["--epochs"][1] is False and "overridden by --epoch" in kn["--epochs"][2]
    assert kn["--learning_rate"][1] is False and "overridden by --learn" in kn["--learning_rate"][2]
    assert kn["command:--epoch"][:2] == (3, True) and kn["command:--learn"][:2] == (0.05, True)
    assert kn["--batch_size"][:2] == (32, True)
    # `--b` begins two options: argparse refuses it as ambiguous, and it overrides neither
    kn = _knobs("python train.py --b 64", files)
    assert kn["--batch_size"][1] is True and kn["--beta"][1] is True
    # a parser that reads whole option strings only
    strict = {"train.py": ABBREV.replace("ArgumentParser()", "ArgumentParser(allow_abbrev=False)")}
    assert _knobs("python train.py --epoch 3", strict)["--epochs"][:2] == (10, True)
    # the value is written where the command has it
    policy = BuiltinPolicy()
    knobs = policy.search_knobs(files, command="python train.py --epoch 3", metric="val_loss")
    _, new = policy.write_values(files, "python train.py --epoch 3", knobs, {"command:--epoch": 6})
    assert new == "python train.py --epoch 6"


ENV_READ = """\
import os
import torch

LR = float(os.environ.get("LR", 0.1))
EPOCHS = int(os.getenv("EPOCHS", "10"))
m = torch.nn.Linear(4, 2)
o = torch.optim.SGD(m.parameters(), lr=LR)
for e in range(EPOCHS):
    print(f"val_loss={1.0 / (e + 1)}")
"""


def test_an_environment_word_the_code_reads_is_a_setting_of_the_command() -> None:
    """`LR=0.01 python train.py` where train.py reads `os.environ.get("LR", 0.1)`: the word is the setting, the
    default in the code never runs; words the code does not read (PYTHONPATH, CUDA_VISIBLE_DEVICES) are none."""
    files = {"train.py": ENV_READ}
    command = "CUDA_VISIBLE_DEVICES=0 LR=0.01 PYTHONPATH=. python train.py"
    kn = _knobs(command, files)
    assert kn["command:LR"][:2] == (0.01, True)
    assert kn["$LR"][1] is False and kn["$EPOCHS"][:2] == (10, True)
    assert not any(k in kn for k in ("command:CUDA_VISIBLE_DEVICES", "command:PYTHONPATH"))
    policy = BuiltinPolicy()
    knobs = policy.search_knobs(files, command=command, metric="val_loss")
    _, new = policy.write_values(files, command, knobs, {"command:LR": 0.02})
    assert new == "CUDA_VISIBLE_DEVICES=0 LR=0.02 PYTHONPATH=. python train.py"
    # the same word in the script the command runs
    script = {**files, "run.sh": "#!/bin/bash\nLR=0.01 python train.py \"$@\"\n"}
    kn = _knobs("bash run.sh", script)
    assert kn["run.sh:LR"][:2] == (0.01, True)
    assert kn["$LR"][1] is False and "run.sh" in kn["$LR"][2]
