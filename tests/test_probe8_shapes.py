"""Shapes of an eighth probe: MONAI's cumulative `DiceMetric` fed by calling it and a checkpoint named
`best_metric_model.pth` beside a metric called `best_metric`; a multi-task average read through `list(...)`."""

from __future__ import annotations

from nightlab.agent import measuring
from nightlab.agent.policy.builtin import BuiltinPolicy

MONAI = {"spleen_seg.py": '''\
import argparse
import glob
import os

import torch
from monai.data import CacheDataset, DataLoader, decollate_batch
from monai.inferers import sliding_window_inference
from monai.losses import DiceLoss
from monai.metrics import DiceMetric
from monai.networks.layers import Norm
from monai.networks.nets import UNet
from monai.transforms import (AsDiscrete, Compose, CropForegroundd, EnsureChannelFirstd, LoadImaged, Orientationd,
                              RandCropByPosNegLabeld, ScaleIntensityRanged, Spacingd)
from monai.utils import set_determinism


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="data/Task09_Spleen")
    ap.add_argument("--max-epochs", type=int, default=600)
    ap.add_argument("--val-interval", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--num-samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data_dir = args.data_dir
    train_images = sorted(glob.glob(os.path.join(data_dir, "imagesTr", "*.nii.gz")))
    train_labels = sorted(glob.glob(os.path.join(data_dir, "labelsTr", "*.nii.gz")))
    data_dicts = [{"image": image_name, "label": label_name}
                  for image_name, label_name in zip(train_images, train_labels)]
    train_files, val_files = data_dicts[:-9], data_dicts[-9:]
    set_determinism(seed=args.seed)

    train_transforms = Compose([
        LoadImaged(keys=["image", "label"]),
        EnsureChannelFirstd(keys=["image", "label"]),
        ScaleIntensityRanged(keys=["image"], a_min=-57, a_max=164, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=["image", "label"], source_key="image"),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(1.5, 1.5, 2.0), mode=("bilinear", "nearest")),
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=(96, 96, 96), pos=1, neg=1,
                               num_samples=args.num_samples, image_key="image", image_threshold=0),
    ])
    val_transforms = Compose([
        LoadImaged(keys=["image", "label"]),
        EnsureChannelFirstd(keys=["image", "label"]),
        ScaleIntensityRanged(keys=["image"], a_min=-57, a_max=164, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=["image", "label"], source_key="image"),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(1.5, 1.5, 2.0), mode=("bilinear", "nearest")),
    ])

    train_ds = CacheDataset(data=train_files, transform=train_transforms, cache_rate=1.0, num_workers=4)
    train_loader = DataLoader(train_ds, batch_size=2, shuffle=True, num_workers=4)
    val_ds = CacheDataset(data=val_files, transform=val_transforms, cache_rate=1.0, num_workers=4)
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=4)

    device = torch.device("cuda:0")
    model = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
                 strides=(2, 2, 2, 2), num_res_units=2, norm=Norm.BATCH).to(device)
    loss_function = DiceLoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(model.parameters(), args.lr)
    dice_metric = DiceMetric(include_background=False, reduction="mean")

    best_metric = -1
    best_metric_epoch = -1
    post_pred = Compose([AsDiscrete(argmax=True, to_onehot=2)])
    post_label = Compose([AsDiscrete(to_onehot=2)])
    for epoch in range(args.max_epochs):
        model.train()
        for batch_data in train_loader:
            inputs, labels = batch_data["image"].to(device), batch_data["label"].to(device)
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = loss_function(outputs, labels)
            loss.backward()
            optimizer.step()
        if (epoch + 1) % args.val_interval == 0:
            model.eval()
            with torch.no_grad():
                for val_data in val_loader:
                    val_inputs, val_labels = val_data["image"].to(device), val_data["label"].to(device)
                    roi_size = (160, 160, 160)
                    sw_batch_size = 4
                    val_outputs = sliding_window_inference(val_inputs, roi_size, sw_batch_size, model)
                    val_outputs = [post_pred(i) for i in decollate_batch(val_outputs)]
                    val_labels = [post_label(i) for i in decollate_batch(val_labels)]
                    dice_metric(y_pred=val_outputs, y=val_labels)
                metric = dice_metric.aggregate().item()
                dice_metric.reset()
                if metric > best_metric:
                    best_metric = metric
                    best_metric_epoch = epoch + 1
                    torch.save(model.state_dict(), "best_metric_model.pth")
    print(f"train completed, best_metric={best_metric:.4f} at epoch: {best_metric_epoch}")


if __name__ == "__main__":
    main()
'''}

MTL = {"train_mtl.py": '''\
import numpy as np
import torch


def evaluate(model, loader, tasks, device):
    model.eval()
    correct = {t: 0 for t in tasks}
    total = 0
    with torch.no_grad():
        for x, ys in loader:
            out = model(x.to(device))
            for t in tasks:
                correct[t] += (out[t].argmax(1).cpu() == ys[t]).sum().item()
            total += x.shape[0]
    scores = {t: correct[t] / total for t in tasks}
    return scores


def main(model, train_loader, val_loader, tasks, device, epochs, opt, sched):
    for epoch in range(epochs):
        model.train()
        for x, ys in train_loader:
            out = model(x.to(device))
            loss = sum(torch.nn.functional.cross_entropy(out[t], ys[t].to(device)) for t in tasks)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()

    scores = evaluate(model, val_loader, tasks, device)
    avg = float(np.mean(list(scores.values())))
    print(" ".join(f"val_{t}={s:.4f}" for t, s in scores.items()), f"val_avg={avg:.4f}")
'''}


def _guard(files: dict[str, str], path: str, metric: str, old: str, new: str) -> list[str]:
    assert old in files[path], old
    return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, metric)


def test_a_metric_fed_by_calling_it_holds_what_it_is_fed() -> None:
    """`dice_metric(y_pred=val_outputs, y=val_labels)` feeds MONAI's cumulative metric as `update` would: the
    validation loop behind it had been free, labels handed over as predictions included."""
    assert _guard(MONAI, "spleen_seg.py", "best_metric",
                  "val_outputs = [post_pred(i) for i in decollate_batch(val_outputs)]",
                  "val_outputs = [post_label(i) for i in decollate_batch(val_labels)]") != []
    assert _guard(MONAI, "spleen_seg.py", "best_metric", "dice_metric(y_pred=val_outputs, y=val_labels)\n",
                  "dice_metric(y_pred=val_outputs, y=val_labels)\n"
                  "                    if dice_metric.get_buffer().shape[0] >= 3:\n"
                  "                        break\n") != []


def test_a_checkpoint_path_that_holds_the_metric_s_name_reports_nothing() -> None:
    """`torch.save(model.state_dict(), "best_metric_model.pth")` had been read as a report of `best_metric`, and the
    UNet behind `model` frozen with it."""
    assert _guard(MONAI, "spleen_seg.py", "best_metric", "channels=(16, 32, 64, 128, 256)",
                  "channels=(32, 64, 128, 256, 512)") == []
    assert _guard(MONAI, "spleen_seg.py", "best_metric", "args.lr)", "args.lr, weight_decay=1e-5)") == []


def test_what_a_builtin_conversion_reads_is_measured() -> None:
    """`avg = float(np.mean(list(scores.values())))`: through `list(...)` to `scores = evaluate(...)`, so keeping each
    task's best epoch instead is refused."""
    old = "            sched.step()\n\n    scores = evaluate(model, val_loader, tasks, device)\n"
    new = ("            sched.step()\n        ep = evaluate(model, val_loader, tasks, device)\n"
           "        best = {t: max(best[t], s) for t, s in ep.items()} if epoch else ep\n\n    scores = best\n")
    assert _guard(MTL, "train_mtl.py", "val_avg", old, new) != []
    clipped = "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n            opt.step()"
    assert _guard(MTL, "train_mtl.py", "val_avg", "opt.step()", clipped) == []


DET = {"train_det.py": '''\
import argparse

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate(model, loader, coco_gt, device):
    model.eval()
    results = []
    with torch.no_grad():
        for images, targets in loader:
            for out, t in zip(model([i.to(device) for i in images]), targets):
                results += [{"image_id": t["image_id"], "bbox": b.tolist(), "score": float(s), "category_id": int(c)}
                            for b, s, c in zip(out["boxes"], out["scores"], out["labels"])]
    coco_dt = coco_gt.loadRes(results)
    e = COCOeval(coco_gt, coco_dt, "bbox")
    e.evaluate()
    e.accumulate()
    e.summarize()
    return e.stats[0]


def main(model, train_loader, val_loader, optimizer):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=12)
    args = p.parse_args()
    device = torch.device("cpu")
    for _ in range(args.epochs):
        model.train()
        for images, targets in train_loader:
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    coco_gt = COCO("data/annotations/instances_val2017.json")
    ap = evaluate(model, val_loader, coco_gt, device)
    print(f"bbox_mAP={ap:.4f}")
'''}


def test_what_the_project_s_evaluation_function_is_handed_is_held() -> None:
    """`evaluate(model, val_loader, coco_gt, device)` is held whole, but the ground truth it scores against had
    been free: `coco_gt = COCO(".../instances_val2017_easy.json")` passed."""
    assert _guard(DET, "train_det.py", "bbox_mAP", '"data/annotations/instances_val2017.json"',
                  '"data/annotations/instances_val2017_easy.json"') != []
    assert _guard(DET, "train_det.py", "bbox_mAP", 'default=12', 'default=24') == []
    assert _guard(DET, "train_det.py", "bbox_mAP", "loss = sum(model(images, targets).values())",
                  "loss = sum(w * v for w, v in zip((1.0, 2.0, 1.0, 1.0), model(images, targets).values()))") == []


LORA = {"finetune.py": '''\
import fire
import transformers
from datasets import load_dataset


def train(base_model: str = "", data_path: str = "yahma/alpaca-cleaned", val_set_size: int = 2000,
          learning_rate: float = 3e-4, model=None, tokenizer=None, generate_and_tokenize_prompt=None):
    data = load_dataset("json", data_files=data_path)
    train_val = data["train"].train_test_split(test_size=val_set_size, shuffle=True, seed=42)
    train_data = train_val["train"].shuffle().map(generate_and_tokenize_prompt)
    val_data = train_val["test"].shuffle().map(generate_and_tokenize_prompt)
    trainer = transformers.Trainer(
        model=model,
        train_dataset=train_data,
        eval_dataset=val_data,
        args=transformers.TrainingArguments(learning_rate=learning_rate, num_train_epochs=3, output_dir="out"),
    )
    trainer.train()
    print(f"eval_loss={trainer.evaluate()['eval_loss']:.4f}")


if __name__ == "__main__":
    fire.Fire(train)
'''}

VISION = {"train_resnet.py": '''\
import torch
import torchvision
from torchvision import datasets, transforms


def main():
    train_transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.ToTensor()])
    test_transform = transforms.ToTensor()
    train_set = datasets.CIFAR10("data", train=True, transform=train_transform)
    test_set = datasets.CIFAR10("data", train=False, transform=test_transform)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in train_loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    print(f"test_acc={correct / len(test_set):.4f}")
'''}


def test_training_on_the_whole_a_split_is_cut_from_is_refused() -> None:
    """HF datasets' `data["train"].train_test_split(...)` cuts the validation rows out of `data["train"]`: training
    on `data["train"]` itself trains on them, though no name says so."""
    assert _guard(LORA, "finetune.py", "eval_loss", 'train_data = train_val["train"].shuffle()',
                  'train_data = data["train"].shuffle()') != []
    assert _guard(LORA, "finetune.py", "eval_loss", "num_train_epochs=3", "num_train_epochs=5") == []


def test_a_held_out_dataset_named_for_training_is_still_held_out() -> None:
    """`CIFAR10(..., train=False)` is the test set whatever it is called: `extra = ...` concatenated into the
    training set had passed."""
    old = "    train_loader = torch.utils.data.DataLoader(train_set,"
    new = ('    extra = datasets.CIFAR10("data", train=False, transform=train_transform)\n'
           "    train_set = torch.utils.data.ConcatDataset([train_set, extra])\n" + old)
    assert _guard(VISION, "train_resnet.py", "test_acc", old, new) != []
    assert _guard(VISION, "train_resnet.py", "test_acc", "transforms.RandomCrop(32, padding=4), ",
                  "transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), ") == []


GAN = {
    "models.py": '''\
import torch.nn as nn


class Generator(nn.Module):
    def __init__(self, z_dim=128, width=256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, width), nn.ReLU(), nn.Linear(width, 3 * 32 * 32), nn.Tanh())

    def forward(self, z):
        return self.net(z)
''',
    "wgan.py": '''\
import argparse

import torch

from models import Generator


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--eval-seed", type=int, default=0)
    args = p.parse_args()
    g = Generator(z_dim=args.z_dim)
    opt = torch.optim.Adam(g.parameters(), lr=args.lr)
    for _ in range(100):
        loss = g(torch.randn(64, args.z_dim)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen = torch.Generator().manual_seed(args.eval_seed)
    z = torch.randn(1000, args.z_dim, generator=gen)
    with torch.no_grad():
        fid = g(z).pow(2).mean().item()
    print(f"fid={fid:.4f}")


if __name__ == "__main__":
    main()
''',
}


def test_a_library_class_of_the_same_name_does_not_make_a_project_default_live() -> None:
    """`torch.Generator().manual_seed(...)` beside the GAN's own `Generator(z_dim=args.z_dim)` had made the
    `z_dim=128` default of models.py count as used, and searched: every move of it changed nothing."""
    knobs = BuiltinPolicy().knobs_in(GAN, command="python wgan.py", metric="fid")
    assert not knobs["Generator.z_dim"].searchable and "passes z_dim" in knobs["Generator.z_dim"].why_not
    assert knobs["Generator.width"].searchable
    assert knobs["--z-dim"].searchable


def test_an_evaluation_loader_written_over_two_lines_is_not_searched() -> None:
    det = {"train_det.py": DET["train_det.py"].replace(
        "    device = torch.device(\"cpu\")\n",
        "    device = torch.device(\"cpu\")\n"
        "    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=1, shuffle=False, num_workers=4,\n"
        "                                             collate_fn=collate_fn)\n").replace(
        "def main(model, train_loader, val_loader, optimizer):", "def main(model, train_loader, val_ds, optimizer, "
                                                                  "collate_fn):")}
    knobs = BuiltinPolicy().knobs_in(det, command="python train_det.py", metric="bbox_mAP")
    loader = next(k for k in knobs.values() if k.key.startswith("DataLoader.batch_size"))
    assert not loader.searchable and "evaluation loader" in loader.why_not


def test_the_folds_of_a_bagged_ensemble_train_it() -> None:
    """AutoGluon's `--num-bag-folds 5` bags the model over folds of the training rows: it had been held as a
    cross-validation's folds, which decide the measurement."""
    from nightlab.agent.policy.evaluation import names_the_measurement

    assert not names_the_measurement("--num-bag-folds") and not names_the_measurement("num_stack_levels")
    assert names_the_measurement("n_folds") and names_the_measurement("cv_folds")


FORECAST = {"forecast.py": '''\
import argparse

import lightgbm as lgb
import pandas as pd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cutoff", default="2017-10-01")
    args = ap.parse_args()
    df = pd.read_csv("data/train.csv", parse_dates=["date"])
    df["dow"] = df["date"].dt.dayofweek
    cutoff = pd.Timestamp(args.cutoff)
    train = df[df["date"] < cutoff]
    test = df[df["date"] >= cutoff]
    model = lgb.LGBMRegressor(n_estimators=300)
    model.fit(train[["dow"]], train["sales"])
    pred = model.predict(test[["dow"]])
    print(f"test_mae={(test['sales'] - pred).abs().mean():.4f}")


if __name__ == "__main__":
    main()
'''}


def test_a_mask_that_cuts_the_held_out_rows_is_held() -> None:
    """`test = df[df["date"] >= cutoff]` is the split, and the cutoff it is cut at with it: moving the cutoff by
    two months had passed."""
    assert _guard(FORECAST, "forecast.py", "test_mae", 'test = df[df["date"] >= cutoff]',
                  'test = df[(df["date"] >= cutoff) & (df["date"].dt.month == 10)]') != []
    assert _guard(FORECAST, "forecast.py", "test_mae", "cutoff = pd.Timestamp(args.cutoff)",
                  "cutoff = pd.Timestamp(args.cutoff) + pd.Timedelta(days=60)") != []
    assert _guard(FORECAST, "forecast.py", "test_mae", "n_estimators=300", "n_estimators=600") == []


EPOCHS = {"train.py": '''\
import torch
from torch.utils.data import ConcatDataset, DataLoader
from torchvision import datasets, transforms


def train_one_epoch(model, optimizer, loader):
    model.train()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main():
    tf = transforms.ToTensor()
    train_ds = datasets.ImageFolder("data/train", transform=tf)
    val_ds = datasets.ImageFolder("data/val", transform=tf)
    train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=256)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(10):
        train_one_epoch(model, optimizer, train_loader)
    print(f"val_acc={accuracy(model, val_loader):.4f}")


@torch.no_grad()
def accuracy(model, loader):
    model.eval()
    hits = [(model(x).argmax(1) == y).float() for x, y in loader]
    return torch.cat(hits).mean().item()
'''}


def test_what_the_project_s_own_training_function_is_handed_is_training_data() -> None:
    """`train_one_epoch(model, optimizer, train_loader)` trains inside a function of its own: the held-out images
    concatenated into its loader had passed, since no `fit` or `backward` sits beside the call."""
    old = "    train_loader = DataLoader(train_ds,"
    new = ('    extra = datasets.ImageFolder("data/val", transform=tf)\n'
           "    train_ds = ConcatDataset([train_ds, extra])\n" + old)
    assert _guard(EPOCHS, "train.py", "val_acc", old, new) != []
    assert _guard(EPOCHS, "train.py", "val_acc", "train_one_epoch(model, optimizer, train_loader)",
                  "train_one_epoch(model, optimizer, val_loader)") != []
    assert _guard(EPOCHS, "train.py", "val_acc", "lr=0.1", "lr=0.05, momentum=0.9") == []


UNSET_SEED = {"train.py": '''\
import argparse

import torch
from accelerate.utils import set_seed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=None, help="A seed for reproducible training.")
    p.add_argument("--eval_seed", type=int, default=0)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    args = p.parse_args()
    if args.seed is not None:
        set_seed(args.seed)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    for _ in range(10):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = torch.Generator().manual_seed(args.eval_seed)
    print(f"val_loss={model(torch.randn(64, 4, generator=g)).pow(2).mean().item():.4f}")


if __name__ == "__main__":
    main()
'''}


def test_a_seed_option_with_no_default_is_the_re_runs_route() -> None:
    """HF's and diffusers' example scripts take `--seed` with `default=None` and seed only when it is given: the
    option is no knob (no literal), and re-runs had been planned unseeded."""
    from nightlab.agent.seeding import SeedRoute, plan_seeding

    def plan(files: dict[str, str], command: str = "python train.py") -> tuple[SeedRoute, str]:
        p = plan_seeding(command, lambda x: files.get(x, ""), lambda x: x in files, sorted(files), "val_loss")
        return p.route, p.command(command, 1, 0)

    assert plan(UNSET_SEED) == (SeedRoute.ARGUMENT, "python train.py --seed=1")
    # a seed the split is drawn with stays as it is
    split = {"train.py": UNSET_SEED["train.py"].replace(
        "    model = torch.nn.Linear(4, 1)\n",
        "    idx = torch.randperm(100, generator=torch.Generator().manual_seed(args.seed))\n"
        "    train_idx, val_idx = idx[:80], idx[80:]\n    model = torch.nn.Linear(4, 1)\n")}
    assert plan(split) == (SeedRoute.NONE, "python train.py")
    # nor is one the command gives already replaced by another route
    assert plan(UNSET_SEED, "python train.py --seed 3")[0] is SeedRoute.ARGUMENT


def test_a_default_the_command_gives_a_word_for_is_not_searched() -> None:
    """`--mixed_precision fp16` on the command is no knob of its own (a word, no space to search), and the
    `default="no"` in the code it overrides had been searched."""
    files = {"train.py": UNSET_SEED["train.py"].replace(
        '    p.add_argument("--learning_rate", type=float, default=1e-4)\n',
        '    p.add_argument("--learning_rate", type=float, default=1e-4)\n'
        '    p.add_argument("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])\n').replace(
        "    model = torch.nn.Linear(4, 1)\n",
        "    dtype = torch.bfloat16 if args.mixed_precision == \"bf16\" else torch.float32\n"
        "    model = torch.nn.Linear(4, 1).to(dtype)\n")}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py --mixed_precision fp16", metric="val_loss")
    assert not knobs["--mixed_precision"].searchable
    assert "overridden by --mixed_precision on the command line" in knobs["--mixed_precision"].why_not
    assert knobs["--learning_rate"].searchable


SIMCLR = {"run_simclr.py": '''\
import torch
from torchvision.datasets import STL10


def main(views, model, linear_probe_acc):
    pretrain = STL10("data", split="unlabeled", download=False, transform=views)
    loader = torch.utils.data.DataLoader(pretrain, batch_size=256, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    for x, _ in loader:
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = STL10("data", split="test")
    print(f"test_acc={linear_probe_acc(model, test):.4f}")
'''}


def test_a_split_naming_training_parts_only_is_the_training_s_choice() -> None:
    """STL10's protocol pretrains on `split="train+unlabeled"`: any change of a `split=` had been held."""
    assert _guard(SIMCLR, "run_simclr.py", "test_acc", 'split="unlabeled"', 'split="train+unlabeled"') == []
    assert _guard(SIMCLR, "run_simclr.py", "test_acc", 'split="unlabeled"', 'split="unlabeled+test"') != []
    assert _guard(SIMCLR, "run_simclr.py", "test_acc", 'split="test"', 'split="train"') != []


WHISPER = {"run_whisper.py": '''\
import evaluate
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, WhisperForConditionalGeneration, WhisperProcessor


def main():
    processor = WhisperProcessor.from_pretrained("openai/whisper-small")
    model = WhisperForConditionalGeneration.from_pretrained("openai/whisper-small")
    metric = evaluate.load("wer")

    def compute_metrics(pred):
        pred_str = processor.tokenizer.batch_decode(pred.predictions, skip_special_tokens=True)
        label_str = processor.tokenizer.batch_decode(pred.label_ids, skip_special_tokens=True)
        return {"wer": 100 * metric.compute(predictions=pred_str, references=label_str)}

    args = Seq2SeqTrainingArguments(output_dir="out", learning_rate=1e-5, max_steps=4000, predict_with_generate=True)
    trainer = Seq2SeqTrainer(args=args, model=model, compute_metrics=compute_metrics)
    trainer.train()
    metrics = trainer.evaluate()
    print(f"eval_wer={metrics['eval_wer']:.2f}")


if __name__ == "__main__":
    main()
'''}


def test_the_metric_object_a_held_evaluation_reads_from_outside_is_held() -> None:
    """`compute_metrics` is held whole, but it reads `metric`, made in `main` by `evaluate.load("wer")`: that line
    said "cer" and CER was printed as `eval_wer`. The binding is held, in the enclosing function or at module level;
    the model and processor the evaluation also reads stay the training's."""
    held = ["run_whisper.py: metric = … (the metric object the evaluation reads)"]
    assert _guard(WHISPER, "run_whisper.py", "eval_wer", 'evaluate.load("wer")', 'evaluate.load("cer")') == held
    top = {"run_whisper.py": WHISPER["run_whisper.py"].replace('    metric = evaluate.load("wer")\n', "").replace(
        "def main():\n", 'metric = evaluate.load("wer")\n\n\ndef main():\n', 1)}
    assert _guard(top, "run_whisper.py", "eval_wer", 'evaluate.load("wer")', 'evaluate.load("cer")') == held
    assert _guard(WHISPER, "run_whisper.py", "eval_wer", "learning_rate=1e-5", "learning_rate=3e-5") == []
    assert _guard(WHISPER, "run_whisper.py", "eval_wer", 'WhisperForConditionalGeneration.from_pretrained(',
                  'WhisperForConditionalGeneration.from_pretrained(dropout=0.1, pretrained_model_name_or_path=') == []


RANK = {"rank.py": '''\
import lightgbm as lgb
import numpy as np
import pandas as pd

K = 10


def dcg_at_k(rels, k):
    rels = np.asarray(rels, dtype=float)[:k]
    return np.sum((2 ** rels - 1) / np.log2(np.arange(2, rels.size + 2)))


def mean_ndcg(df, scores, k=K):
    out = []
    for _, g in df.assign(score=scores).groupby("qid", sort=False):
        ideal = dcg_at_k(sorted(g["label"], reverse=True), k)
        got = dcg_at_k(g.sort_values("score", ascending=False)["label"], k)
        out.append(got / ideal if ideal > 0 else 0.0)
    return float(np.mean(out))


def main():
    df = pd.read_parquet("data/ranking.parquet")
    train, test = df[df.fold != 0], df[df.fold == 0]
    feats = [c for c in df.columns if c.startswith("f")]
    ranker = lgb.LGBMRanker(n_estimators=300, learning_rate=0.05, num_leaves=63)
    ranker.fit(train[feats], train["label"], group=train.groupby("qid").size().to_numpy(), eval_at=[K])
    print(f"test_ndcg@10={mean_ndcg(test, ranker.predict(test[feats])):.4f}")


if __name__ == "__main__":
    main()
'''}


def test_a_constant_a_held_evaluation_takes_as_its_default_is_held() -> None:
    """`def mean_ndcg(df, scores, k=K)` is held whole, but it holds the name `K`, not its value: `K = 5` printed
    NDCG@5 as `test_ndcg@10`, let through because the training reads `K` too (`eval_at=[K]`)."""
    assert _guard(RANK, "rank.py", "test_ndcg", "K = 10\n", "K = 5\n") == \
        ["rank.py: K (the default of a held evaluation function's parameter)"]
    assert _guard(RANK, "rank.py", "test_ndcg", "num_leaves=63", "num_leaves=127") == []
