"""Detectron2's two config systems as its users write them, and detrex's chains of lazy configs: which literal is
the setting the run uses. Before, the canonical `tools/train_net.py` (yacs configs handed whole to the library's
`DefaultTrainer`) left no knob searchable ("not used by the code": the repository never names `SOLVER.BASE_LR`),
and a lazy config's `optimizer.lr = 0.02` was no knob at all, while the `lr=0.02` it overrides in the imported
`common/optim.py` looked searchable. Only static analysis runs here (Detectron2 is not installed)."""

from __future__ import annotations

from collections.abc import Mapping

from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.builtin import BuiltinPolicy

TRAIN_NET = """\
from detectron2.config import get_cfg
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch


def setup(args):
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
"""
YACS = {
    "tools/train_net.py": TRAIN_NET,
    "configs/Base-RCNN-FPN.yaml": "MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\nSOLVER:\n  IMS_PER_BATCH: 16\n"
                                  "  BASE_LR: 0.02\n  MAX_ITER: 90000\n  WEIGHT_DECAY: 0.0001\n",
    "configs/faster_rcnn_R_50_FPN_1x.yaml": "_BASE_: \"Base-RCNN-FPN.yaml\"\nSOLVER:\n  BASE_LR: 0.01\n",
}

LAZY_TRAIN_NET = """\
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, default_argument_parser, default_setup, launch


def do_train(args, cfg):
    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, train_loader, optim)
    trainer.train(start_iter=0, max_iter=cfg.train.max_iter)


def main(args):
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    default_setup(cfg, args)
    do_train(args, cfg)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, args=(args,))
"""
OPTIM = """\
import torch
from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
)

AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(base_lr="${..lr}", weight_decay_norm=0.0),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
"""
COMMON_TRAIN = """\
train = dict(
    output_dir="./output",
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False),
    eval_period=5000,
    log_period=20,
    device="cuda",
)
"""
MASK_RCNN = """\
from detectron2.config import LazyCall as L
from torch.backends import cudnn

from ..common.optim import SGD as optimizer
from ..common.train import train
from ..common.data.coco import dataloader

cudnn.benchmark = False
train.max_iter = 90000
optimizer.lr = 0.02
optimizer.weight_decay = 1e-4
dataloader.train.total_batch_size = 16
"""
DINO_12EP = """\
from ..common.optim import AdamW as optimizer
from ..common.train import train

train.max_iter = 90000
optimizer.lr = 1e-4
optimizer.weight_decay = 1e-4
"""
DINO_24EP = """\
from .dino_12ep import train, optimizer

train.max_iter = 180000
optimizer.lr = 2e-4
"""
LAZY = {
    "tools/lazyconfig_train_net.py": LAZY_TRAIN_NET,
    "configs/common/__init__.py": "",
    "configs/common/optim.py": OPTIM,
    "configs/common/train.py": COMMON_TRAIN,
    "configs/common/data/__init__.py": "",
    "configs/common/data/coco.py": "dataloader = dict(train=dict(total_batch_size=16, num_workers=4))\n",
    "configs/COCO/mask_rcnn_R_50_FPN_1x.py": MASK_RCNN,
    "configs/dino/dino_12ep.py": DINO_12EP,
    "configs/dino/dino_24ep.py": DINO_24EP,
}
LAZY_CMD = "python tools/lazyconfig_train_net.py --num-gpus 1 --config-file"


def _knobs(files: Mapping[str, str], command: str) -> dict[str, tuple[object, bool, str]]:
    got = BuiltinPolicy().knobs_in(files, command=command, metric="bbox/AP")
    return {k: (v.value, v.searchable, v.why_not) for k, v in got.items()}


def test_yacs_settings_handed_to_the_library_trainer_are_searchable_where_they_take_effect() -> None:
    kn = _knobs(YACS, "python tools/train_net.py --num-gpus 1 --config-file configs/faster_rcnn_R_50_FPN_1x.yaml "
                      "SOLVER.IMS_PER_BATCH 2")
    assert kn["configs/faster_rcnn_R_50_FPN_1x.yaml:SOLVER.BASE_LR"][:2] == (0.01, True)
    assert kn["SOLVER.MAX_ITER"][:2] == (90000, True)
    assert kn["SOLVER.WEIGHT_DECAY"][:2] == (0.0001, True)
    assert kn["command:SOLVER.IMS_PER_BATCH"][:2] == (2, True)
    # the base's value is the config's to override, and the command's words override both
    base_lr = kn["configs/Base-RCNN-FPN.yaml:SOLVER.BASE_LR"]
    assert base_lr[1] is False and "faster_rcnn_R_50_FPN_1x.yaml" in base_lr[2]
    assert kn["SOLVER.IMS_PER_BATCH"][1] is False and "on the command line" in kn["SOLVER.IMS_PER_BATCH"][2]
    assert not any("not used by the code" in why for _, _, why in kn.values())


def test_a_lazy_config_sets_what_it_imports_and_the_module_it_imports_from_is_shadowed() -> None:
    kn = _knobs(LAZY, f"{LAZY_CMD} configs/COCO/mask_rcnn_R_50_FPN_1x.py")
    cfg = "configs/COCO/mask_rcnn_R_50_FPN_1x.py"
    assert kn[f"{cfg}:optimizer.lr"][:2] == (0.02, True)
    assert kn[f"{cfg}:dataloader.train.total_batch_size"][:2] == (16, True)
    assert kn["configs/common/data/coco.py:dataloader.train.total_batch_size"][1] is False
    assert kn["SGD.momentum"][:2] == (0.9, True)  # set nowhere later: the imported default is the setting
    sgd_lr = kn["SGD.lr"]
    assert sgd_lr[1] is False and sgd_lr[2] == f"overridden by `optimizer.lr` in {cfg}"
    assert kn["SGD.weight_decay"][1] is False
    assert kn["configs/common/train.py:train.max_iter"][1] is False
    # AdamW is executed (the module is imported) but no config takes it: its settings change nothing
    assert kn["AdamW.lr"][1] is False and "imported by no config" in kn["AdamW.lr"][2]
    assert kn["AdamW.betas[0]"][1] is False
    # the other configs are not run by this command
    assert "not run by" in kn["configs/dino/dino_24ep.py:optimizer.lr"][2]
    assert kn["cudnn.benchmark"][1] is False  # a library's switch, not a setting of what is learned


def test_the_command_overrides_a_lazy_config_and_what_it_imports() -> None:
    kn = _knobs(LAZY, f"{LAZY_CMD} configs/COCO/mask_rcnn_R_50_FPN_1x.py optimizer.lr=0.01 optimizer.momentum=0.95")
    assert kn["command:optimizer.lr"][:2] == (0.01, True)
    written = kn["configs/COCO/mask_rcnn_R_50_FPN_1x.py:optimizer.lr"]
    assert written[1] is False and "on the command line" in written[2]
    # the config never writes momentum: the command's word overrides the imported module's literal itself
    assert kn["SGD.momentum"][1] is False and "optimizer.momentum on the command line" in kn["SGD.momentum"][2]


def test_a_chain_of_lazy_configs_leaves_only_the_last_write_searchable() -> None:
    kn = _knobs(LAZY, f"{LAZY_CMD} configs/dino/dino_24ep.py")
    assert kn["configs/dino/dino_24ep.py:optimizer.lr"][:2] == (2e-4, True)
    assert kn["configs/dino/dino_24ep.py:train.max_iter"][:2] == (180000, True)
    first = kn["configs/dino/dino_12ep.py:optimizer.lr"]
    assert first[1] is False and "configs/dino/dino_24ep.py" in first[2]
    assert kn["configs/dino/dino_12ep.py:train.max_iter"][1] is False
    # written once, in the config it extends: that write is the setting, the module's default is not
    assert kn["configs/dino/dino_12ep.py:optimizer.weight_decay"][:2] == (1e-4, True)
    assert kn["AdamW.weight_decay"][1] is False and "dino_12ep.py" in kn["AdamW.weight_decay"][2]
    assert kn["AdamW.betas[0]"][1] is True
    assert kn["SGD.lr"][1] is False and "imported by no config" in kn["SGD.lr"][2]


def test_a_lazy_config_write_is_edited_in_place() -> None:
    knob = next(k for k in knobmod.discover("configs/dino/dino_24ep.py", DINO_24EP) if k.name.endswith("optimizer.lr"))
    assert knob.value == 2e-4
    out = knobmod.rewrite(DINO_24EP, knob, 4e-4)
    assert out == DINO_24EP.replace("optimizer.lr = 2e-4", "optimizer.lr = 4e-4")
