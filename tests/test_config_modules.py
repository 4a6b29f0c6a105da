"""Python config modules (OpenMMLab's `_base_` files): guarded key by key, not frozen whole.

The dataset config of an mmpretrain-style repository holds the training pipeline beside the validation loader and
its evaluator. It had been protected whole for its `split="test"`, so adding AutoAugment to the training pipeline —
the first thing an engineer tries on such a repository — was refused."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent import code_reach, measuring
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.config_modules import config_module_changes, declarative
from nightlab.agent.policy.evaluation import parse_python

from helpers import tracked_repo

TRAIN = '''\
import argparse

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--cfg-options", nargs="+", action=DictAction)
    args = p.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == "__main__":
    main()
'''

DATASET = '''\
dataset_type = "CIFAR10"
data_preprocessor = dict(num_classes=10, mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255])

train_pipeline = [
    dict(type="RandomCrop", crop_size=32, padding=4),
    dict(type="RandomFlip", prob=0.5, direction="horizontal"),
    dict(type="PackInputs"),
]

test_pipeline = [
    dict(type="PackInputs"),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root="data/cifar10", split="train", pipeline=train_pipeline),
    sampler=dict(type="DefaultSampler", shuffle=True),
)

val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root="data/cifar10", split="test", pipeline=test_pipeline),
    sampler=dict(type="DefaultSampler", shuffle=False),
)
val_evaluator = dict(type="Accuracy", topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
'''

FILES = {
    "tools/train.py": TRAIN,
    "configs/_base_/datasets/cifar10_bs16.py": DATASET,
    "configs/_base_/models/resnet18_cifar.py": '''\
model = dict(
    type="ImageClassifier",
    backbone=dict(type="ResNet_CIFAR", depth=18, num_stages=4, out_indices=(3, ), style="pytorch"),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(type="LinearClsHead", num_classes=10, in_channels=512,
              loss=dict(type="CrossEntropyLoss", loss_weight=1.0)),
    test_cfg=dict(mode="whole"),
)
''',
    "configs/_base_/schedules/cifar10_bs128.py": '''\
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=0.0001))
param_scheduler = dict(type="MultiStepLR", by_epoch=True, milestones=[100, 150], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
''',
    "configs/resnet18_8xb16_cifar10.py": '''\
_base_ = [
    "_base_/models/resnet18_cifar.py", "_base_/datasets/cifar10_bs16.py",
    "_base_/schedules/cifar10_bs128.py",
]
''',
}
COMMAND = "python tools/train.py configs/resnet18_8xb16_cifar10.py --cfg-options optim_wrapper.optimizer.lr=0.05"
DATA = "configs/_base_/datasets/cifar10_bs16.py"


def _guard(path: str, old: str, new: str) -> list[str]:
    assert old in FILES[path], old
    return measuring.measurement_edits(FILES.get, sorted(FILES), {path: FILES[path].replace(old, new)},
                                       "accuracy/top1")


def test_a_dataset_config_module_is_not_protected_whole(tmp_path: Path) -> None:
    tracked = tracked_repo(tmp_path, FILES)
    reached = code_reach.reach(tmp_path, tracked, COMMAND)
    assert DATA in reached.files
    assert measuring.protected_files(str(tmp_path), tracked, reached, "accuracy/top1") == {}


def test_the_training_pipeline_is_free_and_every_way_to_the_measurement_is_held() -> None:
    # the lever: training augmentation, the loader's batch, the model
    assert _guard(DATA, '    dict(type="PackInputs"),\n]\n\ntest_pipeline',
                  '    dict(type="AutoAugment", policies="imagenet"),\n    dict(type="PackInputs"),\n]\n\n'
                  'test_pipeline') == []
    assert _guard(DATA, "batch_size=16,\n    num_workers=2,\n    dataset=dict(type=dataset_type, data_root=\"data/"
                  "cifar10\", split=\"train\"", "batch_size=64,\n    num_workers=2,\n    dataset=dict(type=dataset_"
                  "type, data_root=\"data/cifar10\", split=\"train\"") == []
    assert _guard("configs/_base_/models/resnet18_cifar.py", "depth=18", "depth=34") == []
    # the evaluation: what it reads, how it transforms, what it scores
    assert _guard(DATA, 'split="test"', 'split="train"') != []
    assert _guard(DATA, "test_pipeline = [\n    dict(type=\"PackInputs\"),",
                  "test_pipeline = [\n    dict(type=\"RandomFlip\", prob=1.0),\n    dict(type=\"PackInputs\"),") != []
    assert _guard(DATA, "topk=(1, )", "topk=(1, 5)") != []
    assert _guard(DATA, "test_dataloader = val_dataloader", "test_dataloader = train_dataloader") != []
    assert _guard("configs/_base_/models/resnet18_cifar.py", 'test_cfg=dict(mode="whole")',
                  'test_cfg=dict(mode="slide")') != []
    # the training part given the held-out rows, another dataset, another folder
    assert _guard(DATA, 'data_root="data/cifar10", split="train"', 'data_root="data/cifar10", split="test"') != []
    assert _guard(DATA, 'dataset=dict(type=dataset_type, data_root="data/cifar10", split="train", '
                  'pipeline=train_pipeline)', 'dataset=val_dataloader["dataset"]') != []
    assert _guard(DATA, 'dataset_type = "CIFAR10"', 'dataset_type = "CIFAR100"') != []
    assert _guard(DATA, 'data_root="data/cifar10", split="train"', 'data_root="data/cifar10-clean", split="train"') \
        != []


def test_a_pipeline_the_evaluation_shares_is_held_with_it() -> None:
    shared = DATASET.replace('split="test", pipeline=test_pipeline', 'split="test", pipeline=train_pipeline')
    old_text, new_text = shared, shared.replace('prob=0.5, direction="horizontal"', 'prob=1.0, direction="horizontal"')
    assert [c for c in config_module_changes(old_text, new_text) if c.startswith("train_pipeline.1.prob")]
    assert config_module_changes(DATASET, DATASET.replace('prob=0.5, direction="horizontal"',
                                                          'prob=1.0, direction="horizontal"')) == []


def test_only_modules_that_assign_data_are_configs() -> None:
    assert declarative(parse_python(DATASET))
    assert declarative(parse_python('from mmengine.config import read_base\n\nwith read_base():\n'
                                    '    from .._base_.datasets.cifar10 import *\n\nmodel = dict(depth=18)\n'))
    # code, or constants alone (nanoGPT's exec'd configs stay with the code guard)
    assert not declarative(parse_python('import numpy as np\nX_val = np.load("val.npy")\ncfg = dict(a=1)\n'))
    assert not declarative(parse_python("eval_iters = 200\nlearning_rate = 1e-3\n"))
    assert not declarative(parse_python("def f():\n    return dict(a=1)\n"))


def test_the_evaluation_loader_s_batch_size_is_never_searched() -> None:
    knobs = BuiltinPolicy().knobs_in(FILES, command=COMMAND, metric="accuracy/top1")
    assert not knobs["val_dataloader.batch_size"].searchable
    assert "measurement" in knobs["val_dataloader.batch_size"].why_not
    assert knobs["model.backbone.depth"].searchable


def test_a_section_switched_off_is_not_searched() -> None:
    """mmengine scales the learning rate by `auto_scale_lr.base_batch_size` only when `enable=True` (`tools/train.py
    --auto-scale-lr`), and an `ema = dict(enable=False, momentum=...)` is read by nothing: moving either is no trial."""
    schedule = "configs/_base_/schedules/cifar10_bs128.py"
    files = {**FILES, schedule: FILES[schedule] + "auto_scale_lr = dict(base_batch_size=128)\n"
                                                  "ema = dict(enable=False, momentum=0.0002)\n"}
    knobs = BuiltinPolicy().knobs_in(files, command=COMMAND, metric="accuracy/top1")
    assert not knobs["auto_scale_lr.base_batch_size"].searchable
    assert "switched on" in knobs["auto_scale_lr.base_batch_size"].why_not
    assert not knobs["ema.momentum"].searchable and "ema.enable is off" in knobs["ema.momentum"].why_not
    assert knobs["optim_wrapper.optimizer.momentum"].searchable
    on = BuiltinPolicy().knobs_in(files, command=COMMAND + " --auto-scale-lr", metric="accuracy/top1")
    assert on["auto_scale_lr.base_batch_size"].searchable, on["auto_scale_lr.base_batch_size"].why_not
    files[schedule] = files[schedule].replace("enable=False", "enable=True")
    assert BuiltinPolicy().knobs_in(files, command=COMMAND, metric="accuracy/top1")["ema.momentum"].searchable
