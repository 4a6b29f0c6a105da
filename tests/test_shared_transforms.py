"""A dataset built with one transform and then split: augmentation added to that transform augments the held-out
part too. The guard refuses a random transform added there and leaves deterministic ones (the model's input) and a
training part's own transform free."""

from __future__ import annotations

from nightlab.agent import measuring

DATAMODULE = {
    "train.py": '''\
import lightning as L

from datamodule import DigitsData
from model import LitNet

dm = DigitsData(batch_size=64)
trainer = L.Trainer(max_epochs=3, limit_val_batches=1.0)
trainer.fit(LitNet(lr=1e-3), datamodule=dm)
print(f"val_acc={trainer.validate(datamodule=dm)[0]['val_acc']:.4f}")
''',
    "datamodule.py": '''\
import lightning as L
import torch
from torch.utils.data import DataLoader, random_split
from torchvision import transforms as T
from torchvision.datasets import ImageFolder


class DigitsData(L.LightningDataModule):
    def __init__(self, root="data/digits", batch_size=64):
        super().__init__()
        self.root, self.batch_size = root, batch_size
        self.transform = T.Compose([T.Resize(32), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
        self.train_transform = T.Compose([T.Resize(32), T.ToTensor()])

    def setup(self, stage=None):
        full = ImageFolder(self.root, transform=self.transform)
        self.train_set, self.val_set = random_split(full, [0.9, 0.1], generator=torch.Generator().manual_seed(0))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)
''',
}

SCRIPT = {
    "train.py": '''\
import torch
from torch.utils.data import DataLoader, random_split
from torchvision import transforms
from torchvision.datasets import CIFAR10

tf = transforms.Compose([transforms.ToTensor()])
full = CIFAR10("data", train=True, transform=tf)
train_set, val_set = random_split(full, [45000, 5000], generator=torch.Generator().manual_seed(1))
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in DataLoader(train_set, batch_size=128, shuffle=True):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    acc = sum((model(x).argmax(1) == y).sum().item() for x, y in DataLoader(val_set, batch_size=512)) / len(val_set)
print(f"val_acc={acc:.4f}")
''',
}


def _guard(files: dict[str, str], path: str, old: str, new: str) -> list[str]:
    assert old in files[path], old
    return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, "val_acc")


def test_a_random_augmentation_in_the_transform_the_split_shares_is_refused() -> None:
    refused = _guard(DATAMODULE, "datamodule.py", "T.Compose([T.Resize(32), T.ToTensor(), T.Normalize(",
                     "T.Compose([T.Resize(32), T.RandomRotation(10), T.ToTensor(), T.Normalize(")
    assert any("transform gains RandomRotation" in r and "validation inputs" in r for r in refused), refused
    refused = _guard(SCRIPT, "train.py", "transforms.Compose([transforms.ToTensor()])",
                     "transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), "
                     "transforms.ToTensor()])")
    assert any("tf gains RandomCrop, RandomHorizontalFlip" in r for r in refused), refused


def test_a_deterministic_change_and_the_training_part_s_own_transform_stay_free() -> None:
    assert _guard(DATAMODULE, "datamodule.py", "T.Resize(32), T.ToTensor(), T.Normalize(",
                  "T.Resize(40), T.ToTensor(), T.Normalize(") == []
    assert _guard(DATAMODULE, "datamodule.py", "self.train_transform = T.Compose([T.Resize(32), T.ToTensor()])",
                  "self.train_transform = T.Compose([T.Resize(32), T.RandomRotation(10), T.ToTensor()])") == []
    assert _guard(SCRIPT, "train.py", "lr=0.1", "lr=0.05") == []
