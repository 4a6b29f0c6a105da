"""Keras' `fit(validation_split=...)` holds out the last rows of the arrays as they are handed over: an edit that
shuffles or cuts them first picks other validation rows and is refused; a change of columns or scale is free."""

from __future__ import annotations

import pytest

from nightlab.agent import measuring

KERAS = {"train.py": '''\
import keras
import numpy as np

VALIDATION_SPLIT = 0.2


def main():
    keras.utils.set_random_seed(7)
    data = np.load("data/tabular.npz")
    x, y = data["x"].astype("float32"), data["y"]
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    model = keras.Sequential([keras.Input(shape=(x.shape[1],)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=20, batch_size=64, validation_split=VALIDATION_SPLIT, verbose=0)
    print(f"val_accuracy={hist.history['val_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()
'''}
NORMALISE = "    x = (x - x.mean(0)) / (x.std(0) + 1e-8)\n"


def _guard(new: str) -> list[str]:
    return measuring.measurement_edits(KERAS.get, ["train.py"], {"train.py": KERAS["train.py"].replace(
        NORMALISE, NORMALISE + new)}, "val_accuracy")


@pytest.mark.parametrize("new", [
    "    perm = np.random.permutation(len(x))\n    x, y = x[perm], y[perm]\n",
    "    from sklearn.utils import shuffle\n    x, y = shuffle(x, y, random_state=0)\n",
    "    x, y = x[:5000], y[:5000]\n",
    "    keep = y >= 0\n    x, y = x[keep], y[keep]\n",
])
def test_shuffling_or_cutting_the_rows_before_a_validation_split_fit_is_refused(new: str) -> None:
    refused = _guard(new)
    assert any("reordered or cut" in r for r in refused), refused


@pytest.mark.parametrize("new", [
    "    x = x[:, :8]\n",  # every row, fewer columns
    "    x = np.clip(x, -5, 5)\n",
    "    x = x.reshape(len(x), -1)\n",
])
def test_a_change_of_columns_or_scale_keeps_the_validation_rows(new: str) -> None:
    assert _guard(new) == []
