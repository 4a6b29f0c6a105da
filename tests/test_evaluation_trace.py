"""Which code the metric is traced to (nightlab/agent/policy/evaluation/) when a message prints more than the
metric: only the value the metric's name labels is followed, never a setting printed beside it."""

from __future__ import annotations

import pytest

from nightlab.agent.policy.evaluation import evaluation_functions

CONFIG = '''\
import types


def get_config():
    config = types.SimpleNamespace()
    config.learning_rate = 0.1
    config.num_epochs = 10
    return config
'''
TRAIN = '''\
from configs.default import get_config


def evaluate(model, data):
    return 0.5


def main():
    config = get_config()
    model = make_model(config)
    for epoch in range(config.num_epochs):
        train_epoch(model, config)
        val_loss = evaluate(model, None)
        {line}
'''


@pytest.mark.parametrize("line", [
    'print(f"epoch {epoch} val_loss {val_loss:.4f} lr {config.learning_rate}")',
    'print("epoch", epoch, "val_loss", val_loss, "lr", config.learning_rate)',
    'logger.info("val_loss %.4f lr %g", val_loss, config.learning_rate)',
    'print("val_loss %.4f lr %g" % (val_loss, config.learning_rate))',
    'print("val_loss {:.4f} lr {}".format(val_loss, config.learning_rate))',
    'print("lr {1} val_loss {0:.4f}".format(val_loss, config.learning_rate))',
    'print("lr {lr} val_loss {v:.4f}".format(v=val_loss, lr=config.learning_rate))',
    'print(f"val_loss {evaluate(model, None):.4f} lr {config.learning_rate}")',
])
def test_a_setting_printed_beside_the_metric_is_not_evaluation_code(line: str) -> None:
    """A learning rate printed beside the metric made get_config() (and every setting it holds) evaluation code."""
    files = {"configs/default.py": CONFIG, "train.py": TRAIN.replace("{line}", line)}
    assert evaluation_functions(files, "val_loss") == {"evaluate"}


@pytest.mark.parametrize("line", [
    'report(evaluate(model, None), "val_loss", config.num_epochs)',  # the name labels nothing after it
    'print(config.learning_rate, "val_loss")',
])
def test_where_the_name_labels_nothing_every_value_printed_is_followed(line: str) -> None:
    """(Then what computes the metric cannot be told from the message: every value printed is followed, as before.)"""
    files = {"configs/default.py": CONFIG, "train.py": TRAIN.replace("{line}", line)}
    assert "get_config" in evaluation_functions(files, "val_loss")
