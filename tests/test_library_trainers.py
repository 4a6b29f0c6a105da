"""A library's command-line trainer in a shell script: fastText's supervised tutorial.

`bash run.sh` normalises a file, splits it with `head` / `tail` into `cooking.train` and `cooking.valid`, trains
with `fasttext supervised -lr 1.0 -epoch 25 ...` and scores with `fasttext test model.bin data/cooking.valid`. Before
this the script ran no Python, so nightlab found no knob; and the edit guard let every change of the split and of
the test line through (`head -n 12404` → `13404` put 1000 validation lines into training; `... cooking.valid 1 0.5`
scored only the confident predictions)."""

from __future__ import annotations

import pytest

from nightlab.agent import measuring
from nightlab.agent.policy.builtin import BuiltinPolicy

RUN = """\
#!/usr/bin/env bash
set -euo pipefail

DATA=data/cooking.stackexchange.txt

cat "$DATA" | sed -e "s/\\([.\\!?,'/()]\\)/ \\1 /g" | tr "[:upper:]" "[:lower:]" > data/cooking.preprocessed.txt
head -n 12404 data/cooking.preprocessed.txt > data/cooking.train
tail -n 3000 data/cooking.preprocessed.txt > data/cooking.valid

fasttext supervised -input data/cooking.train -output model_cooking -lr 1.0 -epoch 25 -wordNgrams 2 -dim 100 \\
    -loss softmax -thread 4
fasttext test model_cooking.bin data/cooking.valid
"""
FILES = {"run.sh": RUN, "data/cooking.stackexchange.txt": "__label__sauce How much does potato starch affect it?\n"}


def test_the_trainer_s_flags_in_the_script_are_the_knobs() -> None:
    got = {k: (v.value, v.kind, v.searchable)
           for k, v in BuiltinPolicy().knobs_in(FILES, command="bash run.sh", metric="P@1").items()}
    assert got["run.sh:-lr"] == (1.0, "lr", True)
    assert got["run.sh:-epoch"] == (25, "epochs", True)
    assert got["run.sh:-dim"] == (100, "width", True)
    assert not got["run.sh:-thread"][2]  # how it runs, not what it learns


@pytest.mark.parametrize(("old", "new", "held"), [
    ("head -n 12404", "head -n 13404", "the line that writes data/cooking.train"),
    ("tail -n 3000", "tail -n 500", "the line that writes data/cooking.valid"),
    ("-input data/cooking.train", "-input data/cooking.preprocessed.txt", "input"),
    ("-output model_cooking", "-autotune-validation data/cooking.valid -output model_cooking", "autotune_validation"),
    ("model_cooking.bin data/cooking.valid", "model_cooking.bin data/cooking.valid 1 0.5",
     "the evaluation of data/cooking.valid"),
    ("model_cooking.bin data/cooking.valid", "model_cooking.bin data/cooking.train",
     "the evaluation of data/cooking.valid"),
])
def test_the_split_the_training_file_and_the_test_line_are_held(old: str, new: str, held: str) -> None:
    got = measuring.measurement_edits(FILES.get, sorted(FILES), {"run.sh": RUN.replace(old, new)}, "P@1")
    assert got == [f"run.sh: {held} (a setting of the measurement on a line that runs the program)"]


@pytest.mark.parametrize(("old", "new"), [("-lr 1.0", "-lr 0.5"), ("-epoch 25", "-epoch 50"),
                                          ("-loss softmax", "-loss ova"), ("-dim 100", "-dim 50")])
def test_the_training_s_own_flags_stay_free(old: str, new: str) -> None:
    assert measuring.measurement_edits(FILES.get, sorted(FILES), {"run.sh": RUN.replace(old, new)}, "P@1") == []


def test_a_script_that_hands_the_parts_to_python_keeps_its_flags_free() -> None:
    script = "python train.py data/train.csv data/val.csv --lr 0.1 --epochs 5\n"
    files = {"run.sh": script, "train.py": "import sys\nprint(sys.argv)\n"}
    assert measuring.measurement_edits(files.get, sorted(files), {"run.sh": script.replace("0.1", "0.2")}, "acc") == []
    assert measuring.measurement_edits(files.get, sorted(files), {
        "run.sh": script.replace("data/val.csv", "data/train.csv")}, "acc") != []
    teed = {"run.sh": "python train.py --lr 0.1 > out/train.txt\n", "train.py": files["train.py"]}
    assert measuring.measurement_edits(teed.get, sorted(teed), {"run.sh": teed["run.sh"].replace("0.1", "0.2")},
                                       "acc") == []
