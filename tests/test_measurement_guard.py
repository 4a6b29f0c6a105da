"""What is held fixed because it measures, and what stays free because it trains, on shapes real repositories take.

Found by probing code written the way pytorch/examples, timm, Lightning and scikit-learn projects write it: a metric
helper in a metrics.py of its own, a data-loader factory whose name says "data", an optimizer's `betas[1]`, a
validation loader built from a nested dataset call, process counts on the command line, model methods named
`split_heads` / `score`, augmentation helpers named `mixup_data`, a seed shared by training and the data split, a
loss object shared by training and evaluation. Each test asserts what a user observes: which knobs the search may
move (and why not), which edits the engine refuses as measurement edits, how re-runs are seeded.
"""

from __future__ import annotations

from nightlab.agent import measuring
from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.evaluation import evaluation_functions, fixed_lines
from nightlab.agent.seeding import SeedRoute, plan_seeding

METRICS_PY = '''\
def accuracy(output, target):
    return (output.argmax(1) == target).float().mean().item() * 100.0
'''

TRAIN_WITH_HELPER = '''\
import torch
from metrics import accuracy
from data import get_data_loaders

BATCH_SIZE = 128
LR = 0.1


def validate(model, loader):
    accs = []
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            accs.append(accuracy(model(x), y))
    return sum(accs) / len(accs)


train_loader, val_loader = get_data_loaders(batch_size=BATCH_SIZE, augment=True)
model = torch.nn.Linear(8, 2)
opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999))
for epoch in range(3):
    for x, y in train_loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    print(f"epoch {epoch} val_acc={validate(model, val_loader):.2f}")
'''

DATA_PY = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset, random_split


def get_data_loaders(batch_size=128, augment=False):
    full = TensorDataset(torch.randn(1000, 8), torch.randint(0, 2, (1000,)))
    train_ds, val_ds = random_split(full, [900, 100], generator=torch.Generator().manual_seed(0))
    return DataLoader(train_ds, batch_size=batch_size, shuffle=True), DataLoader(val_ds, batch_size=512)
'''


def test_a_metric_helper_an_evaluation_calls_is_held_as_fixed_as_the_evaluation() -> None:
    """`accuracy` in metrics.py is called only from `validate`: doubling it would double the metric. The engine's
    guard refuses that edit as it refuses one to `validate`; an edit of the training loop passes."""
    files = {"train.py": TRAIN_WITH_HELPER, "metrics.py": METRICS_PY, "data.py": DATA_PY}
    inflated = {"metrics.py": METRICS_PY.replace("* 100.0", "* 200.0")}
    assert measuring.measurement_edits(files.get, sorted(files), inflated, "val_acc") == ["metrics.py: accuracy"]
    legit = {"train.py": TRAIN_WITH_HELPER.replace("range(3)", "range(6)")}
    assert measuring.measurement_edits(files.get, sorted(files), legit, "val_acc") == []


def test_the_training_batch_handed_to_a_loader_factory_is_searched_and_betas_are_read_by_their_name() -> None:
    """`get_data_loaders(batch_size=BATCH_SIZE)`: the factory's name says "data" (its split stays fixed) but the
    batch it is handed is the training batch. `betas=(0.9, 0.999)`: the second is read as `betas`, not as the word
    `1` (which `argmax(1)` in fixed code had matched)."""
    files = {"train.py": TRAIN_WITH_HELPER, "metrics.py": METRICS_PY, "data.py": DATA_PY}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py", metric="val_acc")
    assert knobs["BATCH_SIZE"].searchable, knobs["BATCH_SIZE"].why_not
    betas = [k for k in knobs if k.endswith("betas[1]")]
    assert betas and knobs[betas[0]].searchable, [(k, knobs[k].why_not) for k in betas]
    # the factory's own validation batch stays out of the search
    assert not any(k.searchable for k in knobs.values() if k.value == 512)


def test_a_validation_loader_is_recognised_through_nested_dataset_calls() -> None:
    src = ("import torch\nfrom torch.utils.data import DataLoader, TensorDataset, Subset\n"
           "from torchvision import datasets\n"
           "d = torch.load('blobs.pt')\n"
           "train_loader = DataLoader(TensorDataset(d['x_train'], d['y_train']), batch_size=64, shuffle=True)\n"
           "val_loader = DataLoader(TensorDataset(d['x_val'], d['y_val']), batch_size=512)\n"
           "hold = DataLoader(Subset(full, val_idx), batch_size=128)\n"
           "mnist_test = DataLoader(datasets.MNIST('data', train=False), batch_size=1000)\n"
           "for x in train_loader:\n    pass\n")
    knobs = BuiltinPolicy().knobs_in({"train.py": src}, command="python train.py")
    assert knobs["DataLoader.batch_size"].searchable
    for key in ("DataLoader.batch_size#2", "DataLoader.batch_size#3", "DataLoader.batch_size#4"):
        assert not knobs[key].searchable and "evaluation loader" in knobs[key].why_not, key
    keras = "model.fit(X, Y, batch_size=32, epochs=EPOCHS, validation_split=0.1)\nEPOCHS = 5\n"
    assert BuiltinPolicy().knobs_in({"train.py": keras}, command="python train.py")["fit.batch_size"].searchable


def test_process_and_machine_counts_are_never_searched_but_tree_sizes_are() -> None:
    src = ("import argparse\nap = argparse.ArgumentParser()\n"
           "ap.add_argument('--nproc', type=int, default=4)\n"
           "ap.add_argument('--num_nodes', type=int, default=1)\n"
           "ap.add_argument('--n_jobs', type=int, default=8)\n"
           "ap.add_argument('--num_shards', type=int, default=16)\n"
           "ap.add_argument('--max_leaf_nodes', type=int, default=31)\n"
           "ap.add_argument('--lr', type=float, default=0.1)\n"
           "args = ap.parse_args()\n"
           "print(args.nproc, args.num_nodes, args.n_jobs, args.num_shards, args.max_leaf_nodes, args.lr)\n")
    knobs = BuiltinPolicy().knobs_in({"train.py": src}, command="python train.py")
    by_leaf = {k.split(":")[-1].split(".")[-1].lstrip("-"): v for k, v in knobs.items()}
    for name in ("nproc", "num_nodes", "n_jobs", "num_shards"):
        assert name in by_leaf and not by_leaf[name].searchable, name
    assert by_leaf["max_leaf_nodes"].searchable and by_leaf["lr"].searchable


MODEL_WORDS = '''\
import torch
from torch import nn

MIXUP_ALPHA = 0.2


class Attention(nn.Module):
    def split_heads(self, x):
        return x.view(x.size(0), -1, 4, 8)

    def score(self, x):
        return x.sum()

    def forward(self, x):
        return self.split_heads(x)


class Lit(nn.Module):
    def forward(self, x):
        return x

    def validation_step(self, batch, idx):
        return batch


def mixup_data(x, y, alpha=MIXUP_ALPHA):
    lam = torch.distributions.Beta(alpha, alpha).sample()
    return lam * x + (1 - lam) * x.flip(0), y


def load_data():
    return torch.randn(10, 8)
'''


def test_model_methods_and_augmentation_are_not_frozen_by_their_names() -> None:
    """`split_heads` and `score` are what a model computes, `mixup_data` augments the training batch: none is held
    fixed, and the mixup strength is searched. `validation_step` (even in a class with `forward`) and `load_data`
    stay fixed."""
    fns = evaluation_functions({"model.py": MODEL_WORDS}, "val_loss")
    assert fns == {"validation_step", "load_data"}
    fixed = fixed_lines(MODEL_WORDS, fns)
    lines = MODEL_WORDS.splitlines()
    assert not any("split_heads(self" in lines[n - 1] or "def score" in lines[n - 1] or "def mixup" in lines[n - 1]
                   for n in fixed)
    assert any("def validation_step" in lines[n - 1] for n in fixed)
    knobs = BuiltinPolicy().knobs_in({"model.py": MODEL_WORDS}, command="python model.py")
    assert knobs["MIXUP_ALPHA"].searchable, knobs["MIXUP_ALPHA"].why_not


SHARED_SEED = '''\
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.ensemble import RandomForestClassifier

SEED = 42
np.random.seed(SEED)
X = np.random.rand(200, 4)
y = (X[:, 0] > 0.5).astype(int)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=SEED)
clf = RandomForestClassifier(n_estimators=100).fit(X_tr, y_tr)
print(f"test_acc={clf.score(X_te, y_te):.4f}")
'''


def test_re_runs_never_move_the_data_split_nor_edit_a_protected_file() -> None:
    """A seed constant that also fixes `train_test_split` is left alone (re-runs repeat the command, saying why);
    a seeded generator handed to `random_split` is no training seed; a training seed in a protected file is never
    edited."""
    files = {"train.py": SHARED_SEED}
    plan = plan_seeding("python train.py", files.get, files.__contains__, sorted(files), "test_acc")
    assert plan.route == SeedRoute.NONE and "also fixes the data split" in plan.how
    split_gen = {"train.py": "import torch\nfrom torch.utils.data import random_split\n"
                             "g = torch.Generator().manual_seed(7)\n"
                             "tr, va = random_split(ds, [90, 10], generator=g)\n"
                             "torch.manual_seed(1234)\nprint('val_loss', 0.5)\n"}
    plan = plan_seeding("python train.py", split_gen.get, split_gen.__contains__, sorted(split_gen), "val_loss")
    assert plan.route == SeedRoute.CODE and [lit.value for lit in plan.literals] == [1234]
    seeded = {"train.py": "import data\nprint('val_loss', 0.5)\n",
              "data.py": "import torch\ntorch.manual_seed(3)\n"}
    open_plan = plan_seeding("python train.py", seeded.get, seeded.__contains__, sorted(seeded), "val_loss")
    held = plan_seeding("python train.py", seeded.get, seeded.__contains__, sorted(seeded), "val_loss",
                        protected=["data.py"])
    assert open_plan.route == SeedRoute.CODE and held.route == SeedRoute.NONE


def test_label_smoothing_leaves_a_loss_object_the_evaluation_also_uses() -> None:
    """`criterion` is handed to `evaluate`, which computes the printed val_loss: smoothing it would change the
    measured loss's definition. A criterion used by the training loop alone is smoothed."""
    shared = ("import torch\nfrom torch import nn\n"
              "criterion = nn.CrossEntropyLoss()\n\n\n"
              "@torch.no_grad()\ndef evaluate(model, loader, crit):\n"
              "    return sum(crit(model(x), y).item() for x, y in loader)\n\n\n"
              "for epoch in range(3):\n    for x, y in train_loader:\n"
              "        criterion(model(x), y).backward()\n        opt.step()\n"
              "    print(f'val_loss {evaluate(model, val_loader, criterion):.4f}')\n")
    ev = evaluation_functions({"train.py": shared}, "val_loss")
    assert tf.label_smoothing(shared, "train.py", evaluation=ev) is None
    own = shared.replace("evaluate(model, val_loader, criterion)", "evaluate(model, val_loader, nn.NLLLoss())")
    result = tf.label_smoothing(own, "train.py", evaluation=evaluation_functions({"train.py": own}, "val_loss"))
    assert result is not None and "criterion = nn.CrossEntropyLoss(label_smoothing=0.1)" in result.new_text


SKLEARN_SCRIPT = '''\
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

X, y = load_iris(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
clf = RandomForestClassifier(n_estimators=100, max_depth=4)
clf.fit(X_tr, y_tr)
acc = accuracy_score(y_te, clf.predict(X_te))
print(f"test_acc={acc:.4f}")
'''


def _guard(files: dict[str, str], path: str, old: str, new: str, metric: str) -> list[str]:
    assert old in files[path], old
    return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, metric)


def test_module_level_evaluation_and_the_split_are_guarded_where_no_function_holds_them() -> None:
    """A script with no functions at all (the scikit-learn shape): scoring on the training set, a smaller test
    split, the test set swapped for training rows, or the metric scaled after it is computed are refused; the
    estimator's settings and preprocessing the test set as the training set is are not."""
    files = {"train.py": SKLEARN_SCRIPT}
    for old, new in (("accuracy_score(y_te, clf.predict(X_te))", "accuracy_score(y_tr, clf.predict(X_tr))"),
                     ("test_size=0.2", "test_size=0.02"),
                     ("clf = RandomForest", "X_te, y_te = X_tr[:20], y_tr[:20]\nclf = RandomForest"),
                     ('print(f"test_acc', 'acc = min(1.0, acc * 1.5)\nprint(f"test_acc')):
        refused = _guard(files, "train.py", old, new, "test_acc")
        assert refused and "train.py: line" in refused[0], (old, new)
    for old, new in (("n_estimators=100, max_depth=4", "n_estimators=300, max_depth=8"),
                     ("clf = RandomForest", "sc = StandardScaler().fit(X_tr)\nX_tr = sc.transform(X_tr)\n"
                                            "X_te = sc.transform(X_te)\nclf = RandomForest")):
        assert _guard(files, "train.py", old, new, "test_acc") == [], (old, new)


INLINE_VALIDATION = '''\
import torch
from torch.utils.data import DataLoader, random_split

train_ds, val_ds = random_split(full, [900, 100], generator=torch.Generator().manual_seed(0))
loader = DataLoader(train_ds, batch_size=64, shuffle=True)
for epoch in range(10):
    model.train()
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(val_ds, batch_size=256):
            correct += (model(x).argmax(1) == y).sum().item()
    acc = correct / len(val_ds)
    print(f"epoch {epoch} val_acc={acc:.4f}")
'''


def test_an_inline_validation_loop_and_a_swapped_validation_set_are_guarded() -> None:
    files = {"train.py": INLINE_VALIDATION}
    for old, new in (("acc = correct / len(val_ds)", "acc = correct / (0.5 * len(val_ds))"),
                     ("correct += (model(x).argmax(1) == y).sum().item()", "correct += len(y)"),
                     ("loader = DataLoader(", "val_ds = train_ds\nloader = DataLoader(")):
        assert _guard(files, "train.py", old, new, "val_acc"), (old, new)
    assert _guard(files, "train.py", "batch_size=64", "batch_size=128", "val_acc") == []
    assert _guard(files, "train.py", "opt.step()", "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
                                                   "        opt.step()", "val_acc") == []


EVAL_PY = '''\
import torch


class Evaluator:
    def __init__(self, dataset, batch_size=256, max_batches=None):
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
        self.max_batches = max_batches

    @torch.no_grad()
    def run(self, model):
        correct = n = 0
        for i, (x, y) in enumerate(self.loader):
            if self.max_batches is not None and i >= self.max_batches:
                break
            correct += (model(x).argmax(1) == y).sum().item()
            n += len(y)
        return correct / n


class AverageMeter:
    def __init__(self):
        self.sum = self.count = 0

    def update(self, v, n=1):
        self.sum += v * n
        self.count += n

    @property
    def avg(self):
        return self.sum / max(self.count, 1)


def validate(model, loader):
    top1 = AverageMeter()
    for x, y in loader:
        top1.update((model(x).argmax(1) == y).float().mean().item(), len(y))
    return top1.avg
'''

EVAL_TRAIN = '''\
from eval import Evaluator, validate

evaluator = Evaluator(val_ds)
for epoch in range(3):
    train_one_epoch(model, opt)
    print(f"epoch {epoch} val_acc={evaluator.run(model):.4f} top1={validate(model, val_loader):.4f}")
'''


def test_an_evaluator_class_and_a_meter_the_evaluation_makes_are_held_whole() -> None:
    """`Evaluator.run` computes the metric, so its `__init__` (which keeps `max_batches`) is held with it; an
    `AverageMeter` that `validate` instantiates decides the average it reports."""
    files = {"train.py": EVAL_TRAIN, "eval.py": EVAL_PY}
    assert _guard(files, "eval.py", "self.max_batches = max_batches", "self.max_batches = 1", "val_acc") == [
        "eval.py: Evaluator"]
    assert _guard(files, "eval.py", "self.sum += v * n", "self.sum = max(self.sum, v * self.count + v * n)",
                  "val_acc") == ["eval.py: AverageMeter"]
    assert _guard(files, "train.py", "range(3)", "range(6)", "val_acc") == []


DATAMODULE = '''\
import lightning as L
from torch.utils.data import DataLoader, Subset, random_split


class BlobsDataModule(L.LightningDataModule):
    def __init__(self, batch_size=64, val_fraction=0.1):
        super().__init__()
        self.batch_size = batch_size
        self.val_fraction = val_fraction

    def setup(self, stage=None):
        n_val = int(len(FULL) * self.val_fraction)
        self.train_set, self.val_set = random_split(FULL, [len(FULL) - n_val, n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)
'''


def test_a_datamodule_keeps_its_validation_fixed_and_its_training_batch_free() -> None:
    files = {"datamodule.py": DATAMODULE, "train.py": "print('val_acc', 0.5)\n"}
    assert _guard(files, "datamodule.py", "DataLoader(self.val_set, batch_size=256)",
                  "DataLoader(Subset(self.val_set, range(64)), batch_size=256)", "val_acc") == [
        "datamodule.py: val_dataloader"]
    assert _guard(files, "datamodule.py", "def __init__(self, batch_size=64,", "def __init__(self, batch_size=128,",
                  "val_acc") == []


AUGMENTING_DATA_PY = '''\
import torch
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, transforms

VAL_FRACTION = 0.1
JITTER = 0.4


def build_transforms(augment):
    t = [transforms.RandomCrop(32, padding=4), transforms.ColorJitter(JITTER, JITTER, JITTER)] if augment else []
    return transforms.Compose([*t, transforms.ToTensor()])


def get_dataloaders(batch_size=128, augment=True):
    full = datasets.CIFAR10("data", train=True, transform=build_transforms(augment))
    n_val = int(len(full) * VAL_FRACTION)
    train_ds, val_ds = random_split(full, [len(full) - n_val, n_val], generator=torch.Generator().manual_seed(0))
    return DataLoader(train_ds, batch_size=batch_size, shuffle=True), DataLoader(val_ds, batch_size=512)
'''


def test_a_data_module_that_augments_is_not_frozen_whole_and_its_split_stays_guarded(tmp_path) -> None:
    """data.py splits the data and builds the augmentation: protecting it whole froze the augmentation's strength.
    It stays editable (JITTER is searched) while its split statement is guarded."""
    from nightlab.agent import code_reach

    train = ("from data import get_dataloaders\nBATCH_SIZE = 128\n"
             "train_loader, val_loader = get_dataloaders(batch_size=BATCH_SIZE)\nprint('val_acc', 0.5)\n")
    files = {"train.py": train, "data.py": AUGMENTING_DATA_PY}
    for p, t in files.items():
        (tmp_path / p).write_text(t)
    reached = code_reach.reach(tmp_path, sorted(files), "python train.py")
    assert "data.py" not in measuring.protected_files(str(tmp_path), sorted(files), reached, "val_acc")
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py", metric="val_acc")
    assert knobs["JITTER"].searchable, knobs["JITTER"].why_not
    assert _guard(files, "data.py", "[len(full) - n_val, n_val]", "[len(full) - 10, 10]", "val_acc")
    assert _guard(files, "data.py", "VAL_FRACTION = 0.1", "VAL_FRACTION = 0.01", "val_acc")  # the size it reads


SHARED_EPOCH = '''\
import torch


def run_epoch(model, loader, opt=None):
    training = opt is not None
    model.train(training)
    total = n = 0
    for x, y in loader:
        with torch.set_grad_enabled(training):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        if training:
            opt.zero_grad()
            loss.backward()
            opt.step()
        total += loss.item() * len(y)
        n += len(y)
    return total / n


for epoch in range(5):
    run_epoch(model, train_loader, opt)
    val_loss = run_epoch(model, val_loader)
    print(f"epoch {epoch} val_loss {val_loss:.4f}")
'''


def test_a_function_that_trains_and_evaluates_keeps_what_it_returns_guarded() -> None:
    """`run_epoch` trains (so it is no evaluation function) and returns the validation loss: its return and the
    accumulation feeding it are guarded; its optimizer step is not."""
    files = {"train.py": SHARED_EPOCH}
    assert _guard(files, "train.py", "return total / n", "return 0.5 * total / n", "val_loss")
    assert _guard(files, "train.py", "total += loss.item() * len(y)", "total += loss.item()", "val_loss")
    assert _guard(files, "train.py", "            opt.step()\n",
                  "            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n            opt.step()\n",
                  "val_loss") == []


def test_the_guard_leaves_free_what_only_sits_near_the_measurement() -> None:
    """Shapes a review found the first guard too eager on: an augmentation helper a data loader calls, a Dataset
    class with a `_load_data` method, the Trainer built before `trainer.evaluate()`, the model a training function
    returns beside its best accuracy, the labels handed to `train_test_split(stratify=y)`, the data inside
    `len(full)`, a knob printed after the metric, a model's `valid_mask`."""
    data = ("from torchvision import transforms\nfrom torch.utils.data import Dataset, random_split\n\n\n"
            "def build_transforms():\n    return transforms.Compose([transforms.ToTensor()])\n\n\n"
            "class Faces(Dataset):\n    def _load_data(self):\n        return []\n\n"
            "    def __getitem__(self, i):\n        return i\n\n    def __len__(self):\n        return 1\n\n\n"
            "def get_data_loaders(bs):\n    full = Faces()\n    n_val = 10\n"
            "    tr, va = random_split(full, [len(full) - n_val, n_val])\n    return build_transforms(), tr, va\n")
    train = ("from data import get_data_loaders\nfrom transformers import Trainer\nEPOCHS = 10\n"
             "y = df['label']\nX_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y)\n\n\n"
             "def train():\n    model = Net(hidden=128)\n    for e in range(EPOCHS):\n        model.step()\n"
             "        loss.backward()\n    return model, best_acc\n\n\n"
             "model, best_acc = train()\n"
             "trainer = Trainer(model=model, args=args)\n"
             "print('val_acc', trainer.evaluate()['eval_accuracy'], EPOCHS)\n")
    files = {"data.py": data, "train.py": train}
    for path, old, new in (
            ("data.py", "transforms.ToTensor()", "transforms.RandomHorizontalFlip(), transforms.ToTensor()"),
            ("data.py", "        return i\n", "        return i + 0\n"),
            ("train.py", "trainer = Trainer(model=model, args=args)", "trainer = Trainer(model=model, args=args, "
                                                                           "callbacks=[])"),
            ("train.py", "model = Net(hidden=128)", "model = Net(hidden=256)"),
            ("train.py", "y = df['label']", "y = df['label'].astype(int)"),
            ("train.py", "EPOCHS = 10", "EPOCHS = 20")):
        assert _guard(files, path, old, new, "val_acc") == [], (path, old)
    assert _guard(files, "data.py", "n_val = 10", "n_val = 1", "val_acc")  # the split's size still is held
    model = ("from torch import nn\n\n\nclass Net(nn.Module):\n    def valid_mask(self, x):\n        return x > 0\n\n"
             "    def forward(self, x):\n        return x * self.valid_mask(x)\n")
    assert "valid_mask" not in evaluation_functions({"model.py": model}, "val_loss")


def test_a_seed_handed_to_a_split_through_a_generator_variable_is_not_varied() -> None:
    src = {"train.py": "import torch\nfrom torch.utils.data import random_split\nSEED = 0\ntorch.manual_seed(SEED)\n"
                       "g = torch.Generator().manual_seed(SEED)\ntr, va = random_split(ds, [90, 10], generator=g)\n"
                       "print('val_loss', 0.5)\n"}
    plan = plan_seeding("python train.py", src.get, src.__contains__, sorted(src), "val_loss")
    assert plan.route == SeedRoute.NONE and "also fixes the data split" in plan.how
    folder = {"train.py": "import evalpkg.seeds\nprint('val_loss', 0.5)\n",
              "evalpkg/seeds.py": "import torch\ntorch.manual_seed(3)\n"}
    held = plan_seeding("python train.py", folder.get, folder.__contains__, sorted(folder), "val_loss",
                        protected=["evalpkg/"])
    assert held.route == SeedRoute.NONE


def test_a_setting_the_metric_is_computed_from_stays_a_setting() -> None:
    """A module-level literal (`CONFIG = {...}`, `LR = 0.1`, an environment default) the printed value depends on is
    what the search moves: the guard holds the computation, never the setting."""
    files = {"train.py": "import os\nCONFIG = {'lr': 0.1}\nLR = float(os.getenv('LR', '0.002'))\n"
                         "x = 0.6 + CONFIG['lr'] * LR\nprint(f'score={x:.4f}')\n"}
    assert _guard(files, "train.py", "{'lr': 0.1}", "{'lr': 0.3}", "score") == []
    assert _guard(files, "train.py", "'0.002'", "'0.006'", "score") == []
    assert _guard(files, "train.py", "x = 0.6 +", "x = 0.9 +", "score")


def test_what_a_measurement_is_given_at_its_call_site_is_held() -> None:
    """An edit outside the code that measures can still shrink the measurement: a batch cap handed to the
    Evaluator, the training loader handed to `validate`. The epochs around them stay free."""
    files = {"train.py": EVAL_TRAIN, "eval.py": EVAL_PY}
    assert _guard(files, "train.py", "Evaluator(val_ds)", "Evaluator(val_ds, max_batches=1)", "val_acc") == [
        "train.py: Evaluator(…) (what the measurement is given)"]
    assert "train.py: validate(…) (what the measurement is given)" in _guard(
        files, "train.py", "validate(model, val_loader)", "validate(model, train_loader)", "val_acc")
    assert _guard(files, "train.py", "range(3)", "range(6)", "val_acc") == []


LIGHTNING_TRAIN = '''\
import lightning as L
from model import LitNet
from datamodule import BlobsDataModule

dm = BlobsDataModule(batch_size=64)
trainer = L.Trainer(max_epochs=5, limit_val_batches=1.0, gradient_clip_val=1.0, check_val_every_n_epoch=1)
trainer.fit(LitNet(lr=1e-3), datamodule=dm)
print(f"val_acc={trainer.callback_metrics['val_acc']:.4f}")
'''


def test_a_trainer_keeps_its_validation_limits_and_its_training_settings_free() -> None:
    """Lightning's `limit_val_batches` (and any keyword with an evaluation word) is part of the measurement wherever
    it is written; reading `trainer.callback_metrics` after training does not make `max_epochs` or the clipping
    value measuring code."""
    files = {"train.py": LIGHTNING_TRAIN}
    assert _guard(files, "train.py", "limit_val_batches=1.0", "limit_val_batches=0.05", "val_acc") == [
        "train.py: Trainer(limit_val_batches=…) (a setting of the measurement)"]
    assert _guard(files, "train.py", "max_epochs=5,", "max_epochs=5, limit_test_batches=2,", "val_acc")
    assert _guard(files, "train.py", "check_val_every_n_epoch=1", "check_val_every_n_epoch=50", "val_acc")
    for old, new in (("max_epochs=5", "max_epochs=20"), ("gradient_clip_val=1.0", "gradient_clip_val=0.5"),
                     ("LitNet(lr=1e-3)", "LitNet(lr=3e-3)"), ("batch_size=64", "batch_size=128")):
        assert _guard(files, "train.py", old, new, "val_acc") == [], (old, new)


KERAS_AND_HF = '''\
from transformers import Trainer, TrainingArguments

history = model.fit(x_train, y_train, epochs=10, batch_size=32, validation_split=0.2)
args = TrainingArguments("out", learning_rate=5e-5, per_device_eval_batch_size=64, eval_strategy="epoch")
trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                  compute_metrics=compute_metrics)
trainer.train()
print("eval_accuracy", trainer.evaluate()["eval_accuracy"], history.history["val_accuracy"][-1])
'''


def test_keras_and_hugging_face_keywords_that_decide_the_evaluation_are_held() -> None:
    files = {"train.py": KERAS_AND_HF}
    for old, new in (("validation_split=0.2", "validation_split=0.01"),
                     ("eval_dataset=val_ds", "eval_dataset=train_ds"),
                     ("compute_metrics=compute_metrics", "compute_metrics=lambda p: {'accuracy': 1.0}"),
                     ('eval_strategy="epoch"', 'eval_strategy="no"')):
        assert _guard(files, "train.py", old, new, "eval_accuracy"), (old, new)
    for old, new in (("epochs=10", "epochs=20"), ("learning_rate=5e-5", "learning_rate=1e-4"),
                     ("per_device_eval_batch_size=64", "per_device_eval_batch_size=128")):
        assert _guard(files, "train.py", old, new, "eval_accuracy") == [], (old, new)


TRAIN_AND_EVALUATE = '''\
import torch


def fit_model(model, lr, epochs):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), Y).backward()
        opt.step()


def train_and_evaluate(lr, epochs):
    model = torch.nn.Linear(8, 2)
    fit_model(model, lr, epochs)
    acc = (model(XV).argmax(1) == YV).float().mean().item()
    print(f"val_acc={acc:.4f}")


train_and_evaluate(lr=0.1, epochs=3)
'''


def test_the_settings_handed_to_a_function_that_also_trains_stay_free() -> None:
    """`train_and_evaluate` has an evaluation word in its name but trains (through `fit_model`): what it is given
    are training settings, so its call site is no measurement site."""
    files = {"train.py": TRAIN_AND_EVALUATE}
    assert _guard(files, "train.py", "lr=0.1, epochs=3", "lr=0.3, epochs=6", "val_acc") == []


SETTINGS_PY = '''\
import argparse
from dataclasses import dataclass

eval_iters = 200
LEARNING_RATE = 3e-4
CONFIG = {"test_size": 0.2, "lr": 0.1, "eval_batch_size": 512}


@dataclass
class DataConfig:
    val_fraction: float = 0.1
    batch_size: int = 64


class BlobsDataModule:
    def __init__(self, batch_size=64, val_fraction=0.2, num_workers=0):
        self.batch_size, self.val_fraction = batch_size, val_fraction


p = argparse.ArgumentParser()
p.add_argument("--max-eval-samples", type=int, default=None)
p.add_argument("--epochs", type=int, default=10)
print("val_loss", 0.5)
'''


def test_a_setting_named_for_the_measurement_is_held_wherever_it_is_written() -> None:
    """A constant, a dataclass field, a parameter default, a config dict's key, an argparse default: a setting whose
    name says it sizes or chooses the measurement is held; the training settings beside it stay free."""
    files = {"train.py": SETTINGS_PY}
    for old, new in (("eval_iters = 200", "eval_iters = 5"), ('"test_size": 0.2', '"test_size": 0.01'),
                     ("val_fraction: float = 0.1", "val_fraction: float = 0.01"),
                     ("val_fraction=0.2,", "val_fraction=0.02,"),
                     ("type=int, default=None)", "type=int, default=100)")):
        assert _guard(files, "train.py", old, new, "val_loss"), (old, new)
    for old, new in (("LEARNING_RATE = 3e-4", "LEARNING_RATE = 1e-3"), ('"lr": 0.1', '"lr": 0.3'),
                     ('"eval_batch_size": 512', '"eval_batch_size": 1024'),
                     ("batch_size: int = 64", "batch_size: int = 128"),
                     ("def __init__(self, batch_size=64,", "def __init__(self, batch_size=32,"),
                     ("default=10)", "default=20)")):
        assert _guard(files, "train.py", old, new, "val_loss") == [], (old, new)


HYDRA_YAML = '''\
trainer:
  max_epochs: 10
  limit_val_batches: 1.0
  gradient_clip_val: 1.0
data:
  batch_size: 64
  val_split: 0.1
  eval:
    batch_size: 256
optimizer:
  lr: 0.001
'''


def test_a_config_files_measurement_keys_are_held_and_its_training_keys_free() -> None:
    files = {"conf/config.yaml": HYDRA_YAML, "train.py": "print('val_acc', 0.5)\n",
             "params.json": '{"lr": 0.1, "validation": {"fraction": 0.2}}\n'}
    assert _guard(files, "conf/config.yaml", "limit_val_batches: 1.0", "limit_val_batches: 0.1", "val_acc") == [
        "conf/config.yaml: trainer.limit_val_batches (a setting of the measurement)"]
    assert _guard(files, "conf/config.yaml", "  val_split: 0.1\n", "", "val_acc") == [
        "conf/config.yaml: data.val_split (a setting of the measurement)"]
    assert _guard(files, "params.json", '"fraction": 0.2', '"fraction": 0.02', "val_acc")
    for old, new in (("max_epochs: 10", "max_epochs: 30"), ("lr: 0.001", "lr: 0.003"),
                     ("    batch_size: 256", "    batch_size: 512"),
                     ("gradient_clip_val: 1.0", "gradient_clip_val: 0.5")):
        assert _guard(files, "conf/config.yaml", old, new, "val_acc") == [], (old, new)
    assert _guard(files, "params.json", '"lr": 0.1', '"lr": 0.2', "val_acc") == []


def test_a_command_line_that_resizes_the_measurement_is_told_apart_from_one_that_tunes() -> None:
    base = "python train.py --lr 0.1 --val-fraction 0.2 trainer.max_epochs=10"
    assert measuring.command_measurement_changes(base, base.replace("0.2", "0.01")) == ["val_fraction"]
    assert measuring.command_measurement_changes(base, base + " trainer.limit_val_batches=0.1") == [
        "trainer.limit_val_batches"]
    assert measuring.command_measurement_changes(base, base + " --eval_iters=5") == ["eval_iters"]
    assert measuring.command_measurement_changes(base, base.replace("--lr 0.1", "--lr 0.3")) == []
    tuned = base + " +trainer.gradient_clip_val=1.0 --eval-batch-size 64"
    assert measuring.command_measurement_changes(base, tuned) == []
    assert measuring.command_measurement_changes(base, "python train.py 'unclosed") == []


def test_new_code_that_keeps_a_validation_best_for_early_stopping_is_no_measurement_edit() -> None:
    files = {"train.py": SHARED_EPOCH}
    early = ("best_val_loss = 1e9\npatience_left = 3\nfor epoch in range(5):",
             "for epoch in range(5):")
    assert _guard(files, "train.py", early[1], early[0], "val_loss") == []


LIT_MODULE = '''\
import lightning as L
import torch.nn as nn
from torchmetrics.classification import MulticlassAccuracy


class LitClassifier(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3, num_classes=4):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x):
        return self.net(x)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_acc(self(x), y)
        self.log("val_acc", self.val_acc, prog_bar=True)
'''


def test_a_metric_object_a_lightning_module_builds_for_validation_is_held_and_its_network_free() -> None:
    files = {"lit_model.py": LIT_MODULE, "train.py": "print('val_acc', 0.5)\n"}
    assert _guard(files, "lit_model.py", 'average="micro")', 'average="micro", top_k=2)', "val_acc") == [
        "lit_model.py: val_acc = … (a setting of the measurement)"]
    assert _guard(files, "lit_model.py", "nn.ReLU(), nn.Linear(hidden", "nn.GELU(), nn.Linear(hidden", "val_acc") == []


CHAR_LM = '''\
import torch

BATCH_SIZE, BLOCK_SIZE, LEARNING_RATE, MAX_ITERS, EVAL_ITERS = 16, 32, 1e-3, 200, 20
data = torch.load("data/text.pt")
n = int(0.9 * len(data))
train_data, val_data = data[:n], data[n:]


def get_batch(split):
    d = train_data if split == "train" else val_data
    ix = torch.randint(len(d) - BLOCK_SIZE, (BATCH_SIZE,))
    return torch.stack([d[i:i + BLOCK_SIZE] for i in ix]), torch.stack([d[i + 1:i + 1 + BLOCK_SIZE] for i in ix])


def get_batch_files(split):
    if split == "train":
        d = torch.load("data/train.pt")
    else:
        d = torch.load("data/val.pt")
    return d[:BATCH_SIZE]


model = TinyGPT(block_size=BLOCK_SIZE)
opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
for it in range(MAX_ITERS):
    xb, yb = get_batch("train")
    _, loss = model(xb, yb)
    opt.zero_grad()
    loss.backward()
    opt.step()

model.eval()
with torch.no_grad():
    losses = torch.zeros(EVAL_ITERS)
    for k in range(EVAL_ITERS):
        xb, yb = get_batch("val")
        _, l = model(xb, yb)
        losses[k] = l.item()
print(f"val_loss {losses.mean():.4f}")
'''


def test_a_language_models_inline_evaluation_keeps_its_held_out_text() -> None:
    """The nanoGPT shape without a function for the evaluation: the held-out batch asked for by name, the part a
    shared `get_batch` chooses by comparing with "train", and the slice that cuts the text are held; the training
    loop, the batch size and the schedule around them are not."""
    files = {"train.py": CHAR_LM}
    for old, new in (('xb, yb = get_batch("val")', 'xb, yb = get_batch("train")'),
                     ('else val_data', 'else train_data'),
                     ('d = torch.load("data/val.pt")', 'd = torch.load("data/train.pt")'),
                     ("n = int(0.9 * len(data))", "n = int(0.99 * len(data))"),
                     ("data[:n], data[n:]", "data[:n], data[-100:]")):
        assert _guard(files, "train.py", old, new, "val_loss"), (old, new)
    for old, new in (("BATCH_SIZE, BLOCK_SIZE, LEARNING_RATE, MAX_ITERS, EVAL_ITERS = 16, 32, 1e-3, 200, 20",
                      "BATCH_SIZE, BLOCK_SIZE, LEARNING_RATE, MAX_ITERS, EVAL_ITERS = 32, 32, 3e-3, 400, 20"),
                     ("    opt.step()\n",
                      "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n    opt.step()\n"),
                     ("ix = torch.randint(len(d) - BLOCK_SIZE, (BATCH_SIZE,))",
                      "ix = torch.randint(0, len(d) - BLOCK_SIZE, (BATCH_SIZE,))")):
        assert _guard(files, "train.py", old, new, "val_loss") == [], (old, new)


INLINE_VAL_LOSS = '''\
import torch
import torch.nn as nn

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
loss_fn = nn.CrossEntropyLoss()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for epoch in range(5):
    for x, y in train_loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    val_loss = 0.0
    with torch.no_grad():
        for x, y in val_loader:
            val_loss += loss_fn(model(x), y).item()
    print(f"epoch {epoch} val_loss {val_loss / len(val_loader):.4f}")
'''


def test_the_builtin_does_not_propose_a_transform_the_edit_guard_would_refuse() -> None:
    """Label smoothing on a loss the inline validation also computes would change the measured loss: the engine
    refuses it, so the builtin does not spend a proposal on it; on a loss only training uses it is proposed."""
    import random as _random

    from nightlab.agent.policy.base import PolicyContext
    from nightlab.agent.policy.state import Move
    from nightlab.agent.states import Kind

    def proposal(text: str) -> object:
        files = {"train.py": text}
        ctx = PolicyContext(root="", metric="val_loss", goal="minimize", editable=["train.py"], protected=[],
                            experiments=[], best_id=None, baseline_id=None, noise_floor=0.0, brief="", timeout_s=0.0,
                            runs_left=5, read_file=lambda _i, p: files.get(p, ""), rng=_random.Random(0),
                            command="python train.py", tracked=sorted(files))
        policy = BuiltinPolicy()
        move = Move(title="", rationale="", transform="label_smoothing", kind=Kind.TRANSFORM)
        return policy._transform_proposal(ctx, policy._state(ctx, None), move, set())

    assert tf.label_smoothing(INLINE_VAL_LOSS, "train.py") is not None  # the transform itself applies
    assert proposal(INLINE_VAL_LOSS) is None
    own = INLINE_VAL_LOSS.replace("val_loss += loss_fn(model(x), y)",
                                  "val_loss += nn.functional.nll_loss(model(x).log_softmax(-1), y)")
    assert proposal(own) is not None


def test_the_dataset_a_setting_names_is_held_wherever_it_is_set() -> None:
    """nanoGPT's `dataset = 'shakespeare_char'` picks data/<dataset>/val.bin with train.bin: another dataset is another
    task. Held as a literal, a config key, a keyword and on the command line; the batch size beside it is free."""
    files = {"config/small.py": "dataset = 'shakespeare_char'\nbatch_size = 12\n",
             "train.py": "dataset = 'openwebtext'\ndata_dir = os.path.join('data', dataset)\n"
                         "print('val loss', 1.0)\n",
             "conf/config.yaml": "data:\n  dataset_name: cifar10\n  num_workers: 2\n"}
    assert _guard(files, "config/small.py", "'shakespeare_char'", "'easy_char'", "val loss")
    assert _guard(files, "config/small.py", "batch_size = 12", "batch_size = 24", "val loss") == []
    assert _guard(files, "conf/config.yaml", "cifar10", "mnist", "val loss") == [
        "conf/config.yaml: data.dataset_name (a setting of the measurement)"]
    assert _guard(files, "conf/config.yaml", "num_workers: 2", "num_workers: 4", "val loss") == []
    assert measuring.command_measurement_changes("python train.py --dataset cifar10",
                                                 "python train.py --dataset cifar100") == ["dataset"]
    assert measuring.command_measurement_changes("python train.py data.dataset_name=a", "python train.py") == [
        "data.dataset_name"]
