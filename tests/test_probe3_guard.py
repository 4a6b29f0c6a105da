"""The edit guard on the shapes of probe 3: Keras and XGBoost config dicts, Flax's `apply_model`, torchvision's
`load_data` and `utils.py`, an inline evaluation loop, a JAX dict-of-arrays test set, a fairseq-style criterion
factory, a DVC params.yaml.

What measures stays fixed, what trains stays free: each test edits a small repository written the way those projects
write it and asserts what the engine answers (`measurement_edits`: refused with a reason, or allowed).
"""

from __future__ import annotations

from nightlab.agent import measuring
from nightlab.agent.policy.evaluation import evaluation_functions, names_the_measurement


def _guard(files: dict[str, str], path: str, old: str, new: str, metric: str) -> list[str]:
    assert old in files[path], old
    return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, metric)


KERAS = {"train.py": '''\
from tensorflow import keras
config = {"lr": 1e-3, "batch_size": 128, "epochs": 10, "dropout": 0.3, "val_size": 5000}
(x, y), _ = keras.datasets.mnist.load_data()
x_val, y_val = x[-config["val_size"]:], y[-config["val_size"]:]
x_tr, y_tr = x[:-config["val_size"]], y[:-config["val_size"]]
model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dropout(config["dropout"]),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(config["lr"]), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
h = model.fit(x_tr, y_tr, batch_size=config["batch_size"], epochs=config["epochs"], validation_data=(x_val, y_val))
print(f"val_accuracy={h.history['val_accuracy'][-1]:.4f}")
'''}


def test_training_keys_of_a_config_dict_that_also_sizes_the_split_stay_free() -> None:
    for old, new in [('"lr": 1e-3', '"lr": 3e-4'), ('"batch_size": 128', '"batch_size": 256'),
                     ('"epochs": 10', '"epochs": 20'), ('"dropout": 0.3', '"dropout": 0.5')]:
        assert _guard(KERAS, "train.py", old, new, "val_accuracy") == [], old
    assert _guard(KERAS, "train.py", '"val_size": 5000', '"val_size": 500', "val_accuracy")


XGB = {"train.py": '''\
import pandas as pd
import xgboost as xgb
from sklearn.model_selection import train_test_split
SEED = 2024
params = {"objective": "binary:logistic", "eval_metric": "logloss", "eta": 0.1, "max_depth": 6, "seed": SEED}
df = pd.read_csv("data/train.csv")
X_train, X_valid, y_train, y_valid = train_test_split(df.drop(columns=["y"]), df["y"], test_size=0.2,
                                                      random_state=SEED)
dtrain = xgb.DMatrix(X_train, label=y_train)
dvalid = xgb.DMatrix(X_valid, label=y_valid)
evals = [(dtrain, "train"), (dvalid, "valid")]
bst = xgb.train(params, dtrain, num_boost_round=500, evals=evals, early_stopping_rounds=20)
print(f"valid_logloss={bst.best_score:.5f}")
'''}


def test_xgboost_booster_params_are_training_and_its_evals_are_the_measurement() -> None:
    for old, new in [('"eta": 0.1', '"eta": 0.05'), ('"max_depth": 6', '"max_depth": 4'),
                     ("num_boost_round=500", "num_boost_round=1000"),
                     ("dtrain = xgb.DMatrix(X_train, label=y_train)",
                      "dtrain = xgb.DMatrix(X_train, label=y_train, nthread=2)")]:
        assert _guard(XGB, "train.py", old, new, "valid_logloss") == [], old
    assert _guard(XGB, "train.py", '(dvalid, "valid")]', '(dtrain, "valid")]', "valid_logloss")
    assert _guard(XGB, "train.py", "xgb.DMatrix(X_valid, label=y_valid)",
                  "xgb.DMatrix(X_train[:100], label=y_train[:100])", "valid_logloss")
    assert _guard(XGB, "train.py", '"eval_metric": "logloss"', '"eval_metric": "error"', "valid_logloss")


FLAX = {"train.py": '''\
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from model import CNN


@jax.jit
def apply_model(state, images, labels):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return grads, loss, accuracy


@jax.jit
def update_model(state, grads):
    return state.apply_gradients(grads=grads)


def train_epoch(state, train_ds, batch_size, rng):
    perms = jax.random.permutation(rng, len(train_ds["image"]))[: len(train_ds["image"]) // batch_size * batch_size]
    for perm in perms.reshape((-1, batch_size)):
        grads, loss, accuracy = apply_model(state, train_ds["image"][perm], train_ds["label"][perm])
        state = update_model(state, grads)
    return state


def create_train_state(rng, config):
    cnn = CNN()
    params = cnn.init(rng, jnp.ones([1, 28, 28, 1]))["params"]
    tx = optax.sgd(config.learning_rate, config.momentum)
    return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)


def train_and_evaluate(config, train_ds, test_ds):
    rng = jax.random.key(0)
    state = create_train_state(rng, config)
    for epoch in range(config.num_epochs):
        state = train_epoch(state, train_ds, config.batch_size, rng)
        _, test_loss, test_accuracy = apply_model(state, test_ds["image"], test_ds["label"])
        print(f"epoch {epoch} test_accuracy={test_accuracy:.4f}")
'''}


def test_flax_training_step_and_loop_stay_free_and_its_accuracy_stays_fixed() -> None:
    assert evaluation_functions(FLAX, "test_accuracy") == set()
    assert _guard(FLAX, "train.py", "tx = optax.sgd(config.learning_rate, config.momentum)",
                  "tx = optax.adam(config.learning_rate)", "test_accuracy") == []
    assert _guard(FLAX, "train.py", "state = update_model(state, grads)",
                  "state = update_model(state, jax.tree_util.tree_map(lambda g: g * 0.5, grads))",
                  "test_accuracy") == []
    assert _guard(FLAX, "train.py", "accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)",
                  "accuracy = jnp.mean(jnp.argmax(logits, -1) == labels) + 0.1", "test_accuracy")
    assert _guard(FLAX, "train.py", 'apply_model(state, test_ds["image"], test_ds["label"])',
                  'apply_model(state, train_ds["image"], train_ds["label"])', "test_accuracy")


TORCHVISION = {"train.py": '''\
import torch
import torchvision
from torchvision import transforms


def load_data(traindir, valdir):
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor()])
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    return torchvision.datasets.ImageFolder(traindir, train_tf), torchvision.datasets.ImageFolder(valdir, val_tf)


def evaluate(model, loader):
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return 100.0 * correct / len(loader.dataset)


def main():
    train_ds, val_ds = load_data("data/train", "data/val")
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(5):
        for x, y in torch.utils.data.DataLoader(train_ds, batch_size=64, shuffle=True):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        print(f"Acc@1 {evaluate(model, torch.utils.data.DataLoader(val_ds, batch_size=64)):.3f}")


main()
'''}


def test_a_data_loader_that_builds_both_parts_holds_only_its_validation_side() -> None:
    assert _guard(TORCHVISION, "train.py", "transforms.RandomHorizontalFlip(),",
                  "transforms.RandomHorizontalFlip(), transforms.ColorJitter(0.4),", "Acc@1") == []
    assert _guard(TORCHVISION, "train.py", "transforms.Resize(256), transforms.CenterCrop(224)",
                  "transforms.Resize(224), transforms.CenterCrop(224)", "Acc@1")
    assert _guard(TORCHVISION, "train.py", "ImageFolder(valdir, val_tf)", "ImageFolder(traindir, val_tf)", "Acc@1")
    assert _guard(TORCHVISION, "train.py", "ImageFolder(valdir, val_tf)", "ImageFolder(traindir, train_tf)",
                  "Acc@1")


INLINE_LOOP = {"train.py": '''\
import torch
import torch.nn.functional as F
from data import loaders
from model import Net
train_loader, val_loader = loaders()
model = Net()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for epoch in range(10):
    model.train()
    for xb, yb in train_loader:
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for xb, yb in val_loader:
            correct += (model(xb).argmax(1) == yb).sum().item()
            total += len(yb)
    print(f"epoch {epoch} val_acc={correct / total:.4f}")
'''}


def test_an_inline_validation_loop_holds_what_it_iterates_and_when_it_stops() -> None:
    assert _guard(INLINE_LOOP, "train.py", "for xb, yb in val_loader:", "for xb, yb in train_loader:", "val_acc")
    assert _guard(INLINE_LOOP, "train.py", "total += len(yb)\n", "total += len(yb)\n            break\n", "val_acc")
    # the epoch loop trains and prints: its length and the training loop inside it stay free
    assert _guard(INLINE_LOOP, "train.py", "for epoch in range(10):", "for epoch in range(20):", "val_acc") == []
    assert _guard(INLINE_LOOP, "train.py", "        opt.step()\n",
                  "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        opt.step()\n",
                  "val_acc") == []


EPOCHS_THROUGH_A_HELPER = {"train.py": '''\
import torch
from data import loaders
from model import Net


def train_one_epoch(model, opt, loader):
    for xb, yb in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()


train_loader, val_loader = loaders()
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(10):
    train_one_epoch(model, opt, train_loader)
    correct = total = 0
    for xb, yb in val_loader:
        correct += (model(xb).argmax(1) == yb).sum().item()
        total += len(yb)
print(f"val_acc={correct / total:.4f}")
'''}


def test_an_epoch_loop_that_trains_through_a_helper_is_not_held_with_the_validation_loop() -> None:
    assert _guard(EPOCHS_THROUGH_A_HELPER, "train.py", "for epoch in range(10):", "for epoch in range(30):",
                  "val_acc") == []
    assert _guard(EPOCHS_THROUGH_A_HELPER, "train.py", "for xb, yb in val_loader:", "for xb, yb in train_loader:",
                  "val_acc")


ACCELERATE = {"train.py": '''\
import evaluate
import torch
from accelerate import Accelerator
from data import make_loaders
from model import build
accelerator = Accelerator()
model, train_dataloader, eval_dataloader = build(), *make_loaders()
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
metric = evaluate.load("accuracy")
for epoch in range(3):
    model.train()
    for batch in train_dataloader:
        loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    for step, batch in enumerate(eval_dataloader):
        with torch.no_grad():
            outputs = model(**batch)
        predictions = outputs.logits.argmax(dim=-1)
        predictions, references = accelerator.gather_for_metrics((predictions, batch["labels"]))
        metric.add_batch(predictions=predictions, references=references)
    eval_metric = metric.compute()
    accelerator.print(f"epoch {epoch}: eval_accuracy={eval_metric['accuracy']:.4f}")
'''}


def test_an_accelerate_evaluation_loop_feeding_a_metric_by_add_batch_is_held() -> None:
    assert _guard(ACCELERATE, "train.py", "enumerate(eval_dataloader)", "enumerate(train_dataloader)",
                  "eval_accuracy")
    add = "        metric.add_batch(predictions=predictions, references=references)\n"
    assert _guard(ACCELERATE, "train.py", add, add + "        if step >= 5:\n            break\n", "eval_accuracy")
    assert _guard(ACCELERATE, "train.py", "lr=5e-5", "lr=1e-4", "eval_accuracy") == []


JAX_DICT = {"train.py": '''\
import numpy as np
import torch
from model import Net, evaluate
data = np.load("data/mnist.npz")
train_ds = {"image": data["x_train"] / 255.0, "label": data["y_train"]}
test_ds = {"image": data["x_test"] / 255.0, "label": data["y_test"]}
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(5):
    loss = model.loss(train_ds)
    loss.backward()
    opt.step()
    acc = evaluate(model, test_ds)
    print(f"epoch {epoch} test_accuracy={acc:.4f}")
'''}


def test_a_test_set_built_as_a_dict_of_arrays_is_held() -> None:
    assert _guard(JAX_DICT, "train.py", 'test_ds = {"image": data["x_test"] / 255.0, "label": data["y_test"]}',
                  'test_ds = {"image": data["x_test"][:500] / 255.0, "label": data["y_test"][:500]}',
                  "test_accuracy")
    assert _guard(JAX_DICT, "train.py", 'train_ds = {"image": data["x_train"] / 255.0',
                  'train_ds = {"image": data["x_train"] / 127.5 - 1.0', "test_accuracy") == []


UTILS_TRAIN = '''\
import torch
import utils


def evaluate(model, loader):
    model.eval()
    logger = utils.MetricLogger()
    with torch.inference_mode():
        for image, target in loader:
            acc1, acc5 = utils.accuracy(model(image), target, topk=(1, 5))
            logger.meters["acc1"].update(acc1.item(), n=image.shape[0])
    print(f"Acc@1 {logger.acc1.global_avg:.3f}")
    return logger.acc1.global_avg
'''
UTILS_PY = '''\
from collections import defaultdict
import torch


class SmoothedValue:
    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value, n=1):
        self.count += n
        self.total += value * n

    @property
    def global_avg(self):
        return self.total / self.count


class MetricLogger:
    def __init__(self):
        self.meters = defaultdict(SmoothedValue)

    def __getattr__(self, attr):
        return self.meters[attr]


def accuracy(output, target, topk=(1,)):
    _, pred = output.topk(max(topk), 1, True, True)
    correct = pred.t().eq(target[None])
    return [correct[:k].flatten().sum(dtype=torch.float32) * (100.0 / target.size(0)) for k in topk]


def set_weight_decay(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
'''


def test_metric_helpers_reached_through_the_project_module_are_held() -> None:
    files = {"train.py": UTILS_TRAIN, "utils.py": UTILS_PY}
    assert _guard(files, "utils.py", "(100.0 / target", "(150.0 / target", "Acc@1") == ["utils.py: accuracy"]
    assert _guard(files, "utils.py", "return self.total / self.count", "return 1.5 * self.total / self.count",
                  "Acc@1") == ["utils.py: SmoothedValue"]
    assert _guard(files, "utils.py", '"weight_decay": weight_decay}]', '"weight_decay": weight_decay * 2}]',
                  "Acc@1") == []


FAIRSEQ = {"train.py": '''\
import torch
from tasks import build_criterion, build_model


def validate(model, criterion, batches):
    model.eval()
    total, ntok = 0.0, 0
    with torch.no_grad():
        for sample in batches:
            loss, n = criterion(model, sample)
            total += loss.item()
            ntok += n
    return total / ntok


def main(train_batches, valid_batches):
    model = build_model(512)
    criterion = build_criterion()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    for epoch in range(3):
        for sample in train_batches:
            opt.zero_grad()
            loss, n = criterion(model, sample)
            (loss / n).backward()
            opt.step()
        print(f"epoch {epoch} | valid_loss {validate(model, criterion, valid_batches):.3f}")
''', "tasks.py": '''\
import torch.nn as nn
import torch.nn.functional as F


def build_criterion():
    def cross_entropy(model, sample):
        logits = model(sample[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), sample[:, 1:].reshape(-1), reduction="sum")
        return loss, sample[:, 1:].numel()
    return cross_entropy


def build_model(dim):
    return nn.Sequential(nn.Embedding(1000, dim), nn.Linear(dim, 1000))
'''}


def test_a_loss_closure_the_validation_calls_is_held_and_the_model_it_is_given_is_not() -> None:
    assert _guard(FAIRSEQ, "tasks.py", "return loss, sample", "return loss * 0.5, sample", "valid_loss") == \
        ["tasks.py: build_criterion"]
    assert _guard(FAIRSEQ, "tasks.py", "nn.Linear(dim, 1000))", "nn.ReLU(), nn.Linear(dim, 1000))",
                  "valid_loss") == []


DVC = {"params.yaml": "prepare:\n  split: 0.20\n  seed: 20170428\ntrain:\n  n_est: 50\n  min_split: 2\n",
       "src/train.py": '''\
import yaml
from sklearn.ensemble import RandomForestClassifier
params = yaml.safe_load(open("params.yaml"))["train"]
clf = RandomForestClassifier(n_estimators=params["n_est"], min_samples_split=params["min_split"])
'''}


def test_a_bare_split_key_sets_the_measurement_and_a_trees_min_split_does_not() -> None:
    assert _guard(DVC, "params.yaml", "split: 0.20", "split: 0.02", "roc_auc") == \
        ["params.yaml: prepare.split (a setting of the measurement)"]
    assert _guard(DVC, "params.yaml", "n_est: 50", "n_est: 100", "roc_auc") == []
    assert _guard(DVC, "params.yaml", "min_split: 2", "min_split: 4", "roc_auc") == []
    assert measuring.command_measurement_changes("dvc exp run -S prepare.split=0.2",
                                                 "dvc exp run -S prepare.split=0.02")
    assert not names_the_measurement("min_samples_split")
    assert names_the_measurement("n_splits")


KERAS_BATCHES = {"train.py": '''\
from tensorflow import keras
from data import batches, validation
model = keras.Sequential([keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x_val, y_val = validation()
best = 0.0
for epoch in range(10):
    for xb, yb in batches():
        model.train_on_batch(xb, yb)
    acc = model.evaluate(x_val, y_val)[1]
    best = max(best, acc)
print(f"val_acc={best:.4f}")
'''}


def test_a_loop_whose_items_the_measurement_does_not_read_is_not_held() -> None:
    # the epoch loop encloses `acc = model.evaluate(...)` but measures no item of its own: its length trains
    assert _guard(KERAS_BATCHES, "train.py", "for epoch in range(10):", "for epoch in range(20):", "val_acc") == []
    assert _guard(KERAS_BATCHES, "train.py", "model.evaluate(x_val, y_val)", "model.evaluate(x_val[:10], y_val[:10])",
                  "val_acc")


DVC_PREPARE = dict(DVC, **{"params.yaml": "prepare:\n  split: 0.20\n  seed: 20170428\ntrain:\n  seed: 20170428\n"
                                          "  n_est: 50\n  min_split: 2\n",
                           "src/prepare.py": '''\
import random
import sys
import pandas as pd
import yaml
params = yaml.safe_load(open("params.yaml"))["prepare"]
random.seed(params["seed"])
df = pd.read_csv(sys.argv[1])
mask = [random.random() > params["split"] for _ in range(len(df))]
df[mask].to_csv("data/prepared/train.csv")
df[[not m for m in mask]].to_csv("data/prepared/test.csv")
''', "src/train.py": DVC["src/train.py"].replace(
    'RandomForestClassifier(', 'RandomForestClassifier(random_state=params["seed"], ')})


def _protected_guard(files: dict[str, str], old: str, new: str, protected: list[str]) -> list[str]:
    changed = {"params.yaml": files["params.yaml"].replace(old, new)}
    assert changed["params.yaml"] != files["params.yaml"]
    return measuring.measurement_edits(files.get, sorted(files), changed, "roc_auc", protected)


def test_a_config_key_only_protected_code_reads_is_held_and_its_namesake_the_training_reads_is_not() -> None:
    # DVC's example-get-started: prepare.py (protected: it draws the split) reads prepare.seed; train.py reads
    # train.seed, a key of the same name in another section
    protected = ["src/prepare.py", "data/*.csv"]
    assert _protected_guard(DVC_PREPARE, "seed: 20170428\ntrain", "seed: 1\ntrain", protected) == \
        ["params.yaml: prepare.seed (a setting of the measurement)"]
    assert _protected_guard(DVC_PREPARE, "  seed: 20170428\n  n_est", "  seed: 1\n  n_est", protected) == []
    assert _protected_guard(DVC_PREPARE, "n_est: 50", "n_est: 100", protected) == []
    # unprotected, prepare.py is code the search may tune, and its keys are free
    assert _protected_guard(DVC_PREPARE, "seed: 20170428\ntrain", "seed: 1\ntrain", []) == []
    held = measuring.protected_keys(DVC_PREPARE.get, sorted(DVC_PREPARE), protected)
    assert measuring.command_measurement_changes("dvc exp run", "dvc exp run -S params.yaml:prepare.seed=7", held) == \
        ["params.yaml:prepare.seed"]
    assert measuring.command_measurement_changes("dvc exp run", "dvc exp run -S train.seed=7", held) == []


def test_a_key_the_training_code_also_reads_through_its_section_stays_free() -> None:
    # a Hydra-style training script that reads the section by attribute (`cfg.prepare.seed`) sees the key too
    files = dict(DVC_PREPARE, **{"src/train.py": "import yaml\nfrom omegaconf import OmegaConf\n"
                                                 "cfg = OmegaConf.load('params.yaml')\nprint(cfg.prepare.seed)\n"})
    assert _protected_guard(files, "seed: 20170428\ntrain", "seed: 1\ntrain", ["src/prepare.py"]) == []


MAKE_EVAL = {
    "Makefile": "EPOCHS ?= 5\n\ntrain:\n\tpython train.py --epochs $(EPOCHS) --data data/train.csv --lr 0.1\n"
                "\neval:\n\tpython src/evaluate.py model.pkl data/test.csv --limit 0\n",
    "train.py": "import sys\nprint(sys.argv)\n",
    "src/evaluate.py": "import sys\nprint('acc=0.5')\n",
    "data/train.csv": "x,y\n", "data/test.csv": "x,y\n",
}


def _task_guard(files: dict[str, str], path: str, old: str, new: str) -> list[str]:
    changed = {path: files[path].replace(old, new)}
    assert changed[path] != files[path]
    return measuring.measurement_edits(files.get, sorted(files), changed, "acc", ["src/evaluate.py", "data/*.csv"])


def test_a_recipe_line_that_runs_a_protected_script_stays_as_it_is() -> None:
    assert _task_guard(MAKE_EVAL, "Makefile", "--limit 0", "--limit 10") == \
        ["Makefile: how it runs src/evaluate.py (protected)"]
    assert _task_guard(MAKE_EVAL, "Makefile", "\tpython src/evaluate.py model.pkl data/test.csv --limit 0\n",
                       "\techo acc=0.99\n") == ["Makefile: how it runs src/evaluate.py (protected)",
                                                "Makefile: the evaluation of data/test.csv (a setting of the "
                                                "measurement on a line that runs the program)"]
    # the training recipe's own settings are free; the protected data file it names is not
    assert _task_guard(MAKE_EVAL, "Makefile", "--lr 0.1", "--lr 0.3") == []
    assert _task_guard(MAKE_EVAL, "Makefile", "EPOCHS ?= 5", "EPOCHS ?= 8") == []
    assert _task_guard(MAKE_EVAL, "Makefile", "--data data/train.csv", "--data data/test.csv") == \
        ["Makefile: the protected data/test.csv it names", "Makefile: the protected data/train.csv it names",
         "Makefile: data (a setting of the measurement on a line that runs the program)"]
    # reformatting the protected line (another indentation, a doubled space) is no change
    assert _task_guard(MAKE_EVAL, "Makefile", "\tpython src/evaluate.py model.pkl",
                       "\tpython  src/evaluate.py model.pkl") == []


def test_a_dvc_stage_cmd_for_a_protected_script_is_held_wherever_the_stage_is_named() -> None:
    files = {"dvc.yaml": "stages:\n  score_it:\n    cmd: python src/evaluate.py model.pkl data/prepared\n"
                         "  fit:\n    cmd: python src/train.py --n-est 50\n",
             "src/evaluate.py": "print('roc_auc=0.5')\n", "src/train.py": "print('fit')\n"}
    assert _task_guard(files, "dvc.yaml", "model.pkl data/prepared", "model.pkl data/prepared --rows 10") == \
        ["dvc.yaml: how it runs src/evaluate.py (protected)"]
    assert _task_guard(files, "dvc.yaml", "--n-est 50", "--n-est 100") == []
    # a shell script that `cd`s first names the script by its basename
    sh = {"run.sh": "cd src && python evaluate.py --subset full\n", "src/evaluate.py": "print(1)\n"}
    assert _task_guard(sh, "run.sh", "--subset full", "--subset tiny") == \
        ["run.sh: how it runs src/evaluate.py (protected)"]
    # an unprotected script of the same name, named by its own path, is another file
    sh = dict(sh, **{"run.sh": "python evaluate.py --subset full\n", "evaluate.py": "print(2)\n"})
    assert _task_guard(sh, "run.sh", "--subset full", "--subset tiny") == []


CROSS_VALIDATED = {"train.py": '''\
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score
ALPHA = 1.0
CV = 5
N_FOLDS = 4
X, y = load_diabetes(return_X_y=True)
scores = cross_val_score(Ridge(alpha=ALPHA), X, y, cv=CV, scoring="r2")
other = cross_val_score(Ridge(alpha=ALPHA), X, y, cv=KFold(N_FOLDS))
print(f"cv_r2: {scores.mean():.4f}")
'''}


def test_the_number_of_cross_validation_folds_is_a_setting_of_the_measurement() -> None:
    assert _guard(CROSS_VALIDATED, "train.py", "CV = 5", "CV = 2", "cv_r2") == \
        ["train.py: CV = … (a setting of the measurement)"]
    assert _guard(CROSS_VALIDATED, "train.py", "N_FOLDS = 4", "N_FOLDS = 2", "cv_r2") == \
        ["train.py: N_FOLDS = … (a setting of the measurement)"]
    assert _guard(CROSS_VALIDATED, "train.py", "ALPHA = 1.0", "ALPHA = 3.0", "cv_r2") == []
    assert not names_the_measurement("cv2") and not names_the_measurement("unfold")


SK_SPLIT = {"train.py": '''\
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_breast_cancer(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
clf = LogisticRegression(C=1.0, max_iter=1000)
clf.fit(X_tr, y_tr)
preds = clf.predict(X_te)
print(f"test_f1={f1_score(y_te, preds):.4f}")
'''}

TORCH_SLICE = {"train.py": '''\
import torch
from torch import nn


def main():
    d = torch.load("d.pt")
    x, y = d["x"], d["y"]
    xv, x = x[-500:], x[:-500]
    yv, y = y[-500:], y[:-500]
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(5):
        for i in range(0, len(x), 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    print(f"val_acc={acc:.4f}")


main()
'''}


def test_the_training_may_not_start_reading_the_held_out_rows() -> None:
    assert _guard(SK_SPLIT, "train.py", "clf.fit(X_tr, y_tr)", "clf.fit(X_te, y_te)", "test_f1") == \
        ["train.py: the training reads X_te (held-out data)", "train.py: the training reads y_te (held-out data)"]
    # the split's source holds the held-out rows too
    assert _guard(SK_SPLIT, "train.py", "clf.fit(X_tr, y_tr)", "clf.fit(X, y)", "test_f1") == \
        ["train.py: the training reads X (held-out data)", "train.py: the training reads y (held-out data)"]
    # concatenated in a loop's data, or the loop run over the validation part
    # (it rewrites `x`, which the held-out part is cut from: a measuring line as well)
    assert {"train.py: the training reads xv (held-out data)", "train.py: the training reads yv (held-out data)"} <= \
        set(_guard(TORCH_SLICE, "train.py", "    model = nn.Linear(10, 2)\n",
                   "    x, y = torch.cat([x, xv]), torch.cat([y, yv])\n    model = nn.Linear(10, 2)\n", "val_acc"))
    assert _guard(TORCH_SLICE, "train.py", "model(x[i:i + 32]), y[i:i + 32]", "model(xv[i:i + 32]), yv[i:i + 32]",
                  "val_acc") == \
        ["train.py: the training reads xv (held-out data)", "train.py: the training reads yv (held-out data)"]


def test_what_the_training_is_handed_from_the_training_part_stays_free() -> None:
    assert _guard(SK_SPLIT, "train.py", "C=1.0, max_iter=1000", "C=3.0, max_iter=1000", "test_f1") == []
    # standardising on the training part, and monitoring the validation part without training on it
    assert _guard(SK_SPLIT, "train.py", "clf.fit(X_tr, y_tr)",
                  "scaler = StandardScaler().fit(X_tr)\nclf.fit(scaler.transform(X_tr), y_tr)", "test_f1") == []
    keras = {"train.py": '''\
from tensorflow import keras
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=5, validation_data=(x_test, y_test))
print(f"test_accuracy={model.evaluate(x_test, y_test)[1]:.4f}")
'''}
    assert _guard(keras, "train.py", "epochs=5,", "epochs=8,", "test_accuracy") == []
    assert _guard(keras, "train.py", "model.fit(x_train, y_train,", "model.fit(x_test, y_test,", "test_accuracy") == \
        ["train.py: the training reads x_test (held-out data)", "train.py: the training reads y_test (held-out data)"]
    # early stopping on a number measured on the held-out part reads no held-out rows
    assert _guard(TORCH_SLICE, "train.py", "    for epoch in range(5):\n",
                  "    best_val_loss = 1e9\n    for epoch in range(5):\n", "val_acc") == []


def test_what_an_imported_metric_function_scores_is_held() -> None:
    # `f1_score(y_te, preds)`: the predictions it is handed compute the printed number
    assert _guard(SK_SPLIT, "train.py", "preds = clf.predict(X_te)", "preds = y_te", "test_f1") == \
        ["train.py: line 11 (where the metric is computed or the data split)"]
    assert _guard(SK_SPLIT, "train.py", "preds = clf.predict(X_te)",
                  "preds = clf.predict_proba(X_te)[:, 1] > 0.3", "test_f1") == \
        ["train.py: line 11 (where the metric is computed or the data split)"]
    # the model it predicts with is not the measurement: a scaler in its pipeline stays free
    assert _guard(SK_SPLIT, "train.py", "clf = LogisticRegression(C=1.0, max_iter=1000)",
                  "clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))", "test_f1") == []


def test_the_seed_of_a_call_that_sizes_the_held_out_part_is_held_and_an_absl_default_too() -> None:
    fastai = {"train.py": '''\
from fastai.vision.all import *
path = untar_data(URLs.PETS)
dls = ImageDataLoaders.from_name_func(path, get_image_files(path), valid_pct=0.2, seed=42,
                                      label_func=lambda f: f[0].isupper(), item_tfms=Resize(224), bs=64)
learn = vision_learner(dls, resnet34, metrics=error_rate)
learn.fine_tune(1, 1e-3)
print(f"error_rate={learn.validate()[1]:.4f}")
'''}
    assert _guard(fastai, "train.py", "seed=42", "seed=7", "error_rate") == \
        ["train.py: from_name_func(seed=…) (a setting of the measurement)"]
    assert _guard(fastai, "train.py", "bs=64", "bs=32", "error_rate") == []
    # a call that only schedules evaluation trains with its seed
    hf = {"train.py": '''\
from transformers import Trainer, TrainingArguments
args = TrainingArguments("out", eval_steps=100, seed=42, learning_rate=5e-5)
trainer = Trainer(model=None, args=args)
trainer.train()
print(f"eval_loss={trainer.evaluate()['eval_loss']:.4f}")
'''}
    assert _guard(hf, "train.py", "seed=42", "seed=7", "eval_loss") == []
    absl = {"train.py": '''\
from absl import app, flags
FLAGS = flags.FLAGS
flags.DEFINE_integer("eval_examples", 10000, "how many validation examples to score")
flags.DEFINE_float("learning_rate", 0.1, "step size")


def main(_):
    print(f"val_acc={run(FLAGS.learning_rate, FLAGS.eval_examples):.4f}")


app.run(main)
'''}
    assert _guard(absl, "train.py", '"eval_examples", 10000', '"eval_examples", 500', "val_acc") == \
        ["train.py: --eval_examples (its default) (a setting of the measurement)"]
    assert _guard(absl, "train.py", '"learning_rate", 0.1', '"learning_rate", 0.3', "val_acc") == []


def test_a_measurement_setting_nested_in_a_flag_or_given_by_papermill_is_read() -> None:
    changes = measuring.command_measurement_changes
    assert changes("python train.py", "python train.py --gin_bindings='train.val_fraction=0.02'") == \
        ["train.val_fraction"]
    assert changes("papermill t.ipynb o.ipynb -p lr 0.1", "papermill t.ipynb o.ipynb -p lr 0.1 -p val_size 500") == \
        ["val_size"]
    assert changes("papermill t.ipynb o.ipynb -p lr 0.1", "papermill t.ipynb o.ipynb -p lr 0.3") == []
    assert changes("python train.py", "python train.py --gin_bindings='train.learning_rate=0.01'") == []


def test_which_held_out_rows_are_measured_is_held_where_they_are_indexed() -> None:
    files = {"train.py": '''\
import torch
from torch import nn

d = torch.load("d.pt")
x, y, X_val, y_val = d["x"], d["y"], d["xv"], d["yv"]
g = torch.Generator().manual_seed(1234)
idx = torch.randperm(len(X_val), generator=g)[:2000]
model = nn.Linear(10, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(0, len(x), 32):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
    opt.step()
with torch.no_grad():
    acc = (model(X_val[idx]).argmax(1) == y_val[idx]).float().mean().item()
print(f"val_acc={acc:.4f}")
'''}
    assert _guard(files, "train.py", "[:2000]", "[:200]", "val_acc") == \
        ["train.py: line 7 (where the metric is computed or the data split)"]
    assert _guard(files, "train.py", "lr=0.1", "lr=0.3", "val_acc") == []


def test_a_trainer_s_training_data_is_read_where_it_is_handed_over() -> None:
    hf = {"train.py": '''\
from datasets import load_dataset
from transformers import Trainer, TrainingArguments
ds = load_dataset("glue", "sst2")
args = TrainingArguments("out", learning_rate=5e-5)
trainer = Trainer(model=build(), args=args, train_dataset=ds["train"], eval_dataset=ds["validation"])
trainer.train()
print(f"eval_accuracy={trainer.evaluate()['eval_accuracy']:.4f}")
'''}
    val_ds = {"train.py": hf["train.py"].replace('ds = load_dataset("glue", "sst2")',
                                                 'ds = load_dataset("glue", "sst2")\nval_ds = ds["validation"]')}
    assert "train.py: the training reads val_ds (held-out data)" in \
        _guard(val_ds, "train.py", 'train_dataset=ds["train"]', "train_dataset=val_ds", "eval_accuracy")
    assert _guard(hf, "train.py", "learning_rate=5e-5", "learning_rate=3e-5", "eval_accuracy") == []
    lightning = {"train.py": '''\
import lightning as L
train_loader, val_loader = loaders()
trainer = L.Trainer(max_epochs=5)
trainer.fit(build(), train_loader)
print(f"val_acc={trainer.callback_metrics['val_acc']:.4f}")
'''}
    # Lightning's third argument is the validation loader: it only monitors
    assert _guard(lightning, "train.py", "trainer.fit(build(), train_loader)",
                  "trainer.fit(build(), train_loader, val_loader)", "val_acc") == []
    assert _guard(lightning, "train.py", "trainer.fit(build(), train_loader)", "trainer.fit(build(), val_loader)",
                  "val_acc") == ["train.py: the training reads val_loader (held-out data)"]


def test_a_validation_pass_added_beside_the_training_loop_reads_no_held_out_rows_into_training() -> None:
    # the validation loss reuses the name `loss` under torch.no_grad(): it measures, it does not train
    added = ("    with torch.no_grad():\n        loss = nn.functional.cross_entropy(model(xv), yv)\n"
             "        print(f\"val_loss={loss.item():.4f}\")\n    with torch.no_grad():\n")
    files = {"train.py": TORCH_SLICE["train.py"].replace(
        "            nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()\n",
        "            loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])\n"
        "            loss.backward()\n")}
    assert "loss.backward()" in files["train.py"]
    assert _guard(files, "train.py", "    with torch.no_grad():\n", added, "val_acc") == []
    # the same assignment with gradients on is training on the validation rows
    assert _guard(files, "train.py", "    with torch.no_grad():\n",
                  "    loss = nn.functional.cross_entropy(model(xv), yv)\n    loss.backward()\n"
                  "    with torch.no_grad():\n", "val_acc") == \
        ["train.py: the training reads xv (held-out data)", "train.py: the training reads yv (held-out data)"]


def test_a_final_fit_on_training_and_validation_rows_is_free_where_the_test_rows_are_measured() -> None:
    files = {"train.py": '''\
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
X_train, y_train, X_val, y_val, X_test, y_test = load_splits()
clf = LogisticRegression(C=1.0)
clf.fit(X_train, y_train)
print(f"val_accuracy={accuracy_score(y_val, clf.predict(X_val)):.4f}")
print(f"test_accuracy={accuracy_score(y_test, clf.predict(X_test)):.4f}")
'''}
    final = "clf.fit(np.concatenate([X_train, X_val]), np.concatenate([y_train, y_val]))"
    assert _guard(files, "train.py", "clf.fit(X_train, y_train)", final, "test_accuracy") == []
    assert _guard(files, "train.py", "clf.fit(X_train, y_train)", final, "val_accuracy") == \
        ["train.py: the training reads X_val (held-out data)", "train.py: the training reads y_val (held-out data)"]
    assert _guard(files, "train.py", "clf.fit(X_train, y_train)", "clf.fit(X_test, y_test)", "test_accuracy") == \
        ["train.py: the training reads X_test (held-out data)", "train.py: the training reads y_test (held-out data)"]


RAY_TUNE = {"tune_mnist.py": '''\
import torch
from ray import train, tune
from torch import nn

NUM_SAMPLES = 20


def train_mnist(config):
    d = torch.load("/data/mnist.pt")
    x, y = d["x"].float().flatten(1), d["y"]
    xv, yv, x, y = x[-5000:], y[-5000:], x[:-5000], y[:-5000]
    model = nn.Linear(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    for epoch in range(10):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
        with torch.no_grad():
            acc = (model(xv).argmax(1) == yv).float().mean().item()
        train.report({"val_acc": acc})


tuner = tune.Tuner(train_mnist, param_space={"lr": tune.loguniform(1e-4, 1e-1)},
                   tune_config=tune.TuneConfig(metric="val_acc", mode="max", num_samples=NUM_SAMPLES))
best = tuner.fit().get_best_result()
print(f"best_val_acc={best.metrics['val_acc']:.4f}")
'''}


def test_a_printed_summary_of_the_metric_traces_the_measurement_it_summarises() -> None:
    # Ray Tune: the trainable reports `val_acc`, the driver prints `best_val_acc`
    assert _guard(RAY_TUNE, "tune_mnist.py", "x[-5000:], y[-5000:], x[:-5000], y[:-5000]",
                  "x[-500:], y[-500:], x[:-500], y[:-500]", "best_val_acc") == \
        ["tune_mnist.py: line 11 (where the metric is computed or the data split)"]
    assert _guard(RAY_TUNE, "tune_mnist.py", "NUM_SAMPLES = 20", "NUM_SAMPLES = 200", "best_val_acc") == []


def test_the_environment_an_rl_policy_is_evaluated_in_is_held_and_its_training_is_not() -> None:
    sb3 = {"train.py": '''\
import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

model = PPO("MlpPolicy", "CartPole-v1", learning_rate=3e-4, n_steps=256)
model.learn(total_timesteps=20_000)
eval_env = gym.make("CartPole-v1")
mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=20)
print(f"mean_reward={mean_reward:.2f}")
'''}
    assert _guard(sb3, "train.py", 'eval_env = gym.make("CartPole-v1")',
                  'eval_env = gym.make("CartPole-v1", max_episode_steps=50)', "mean_reward") == \
        ["train.py: line 7 (where the metric is computed or the data split)"]
    assert _guard(sb3, "train.py", "learning_rate=3e-4", "learning_rate=1e-3", "mean_reward") == []


def test_an_evaluation_sample_drawn_from_a_held_out_pool_is_held_where_it_is_drawn() -> None:
    files = {"train.py": '''\
import torch
from sklearn.metrics import f1_score
from torch import nn

d = torch.load("d.pt")
x, y, xv_all, yv_all = d["x"], d["y"], d["xv"], d["yv"]
idx = torch.randperm(len(xv_all))[:2000]
xv, yv = xv_all[idx], yv_all[idx]
model = nn.Linear(10, 1)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for i in range(0, len(x), 64):
    opt.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(model(x[i:i + 64]).squeeze(1), y[i:i + 64]).backward()
    opt.step()
with torch.no_grad():
    preds = torch.sigmoid(model(xv).squeeze(1)) > 0.5
print(f"val_f1={f1_score(yv.numpy(), preds.numpy()):.4f}")
'''}
    assert _guard(files, "train.py", "[:2000]", "[:200]", "val_f1") == \
        ["train.py: line 7 (where the metric is computed or the data split)"]
    assert _guard(files, "train.py", "idx = torch.randperm(len(xv_all))[:2000]",
                  "idx = (yv_all == 0).nonzero().squeeze(1)[:2000]", "val_f1") == \
        ["train.py: line 7 (where the metric is computed or the data split)"]
    assert _guard(files, "train.py", "lr=1e-3", "lr=3e-3", "val_f1") == []


def test_the_random_source_of_an_evaluation_sample_is_held_with_the_draw() -> None:
    # the generator decides which held-out rows are measured, however it reaches the draw: a keyword, a method's
    # receiver; the model's own seed stays free
    generator = {"train.py": '''\
import torch
from sklearn.metrics import f1_score
from torch import nn

torch.manual_seed(0)
d = torch.load("d.pt")
x, y, xv_all, yv_all = d["x"], d["y"], d["xv"], d["yv"]
g = torch.Generator().manual_seed(1234)
idx = torch.randperm(len(xv_all), generator=g)[:2000]
xv, yv = xv_all[idx], yv_all[idx]
model = nn.Linear(10, 1)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for i in range(0, len(x), 64):
    opt.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(model(x[i:i + 64]).squeeze(1), y[i:i + 64]).backward()
    opt.step()
with torch.no_grad():
    preds = torch.sigmoid(model(xv).squeeze(1)) > 0.5
print(f"val_f1={f1_score(yv.numpy(), preds.numpy()):.4f}")
'''}
    assert _guard(generator, "train.py", "manual_seed(1234)", "manual_seed(7)", "val_f1") == \
        ["train.py: line 8 (where the metric is computed or the data split)"]
    assert _guard(generator, "train.py", "torch.manual_seed(0)", "torch.manual_seed(1)", "val_f1") == []
    rng = {"train.py": generator["train.py"].replace(
        "g = torch.Generator().manual_seed(1234)\nidx = torch.randperm(len(xv_all), generator=g)[:2000]",
        "rng = np.random.default_rng(1234)\nidx = rng.choice(len(xv_all), 2000, replace=False)").replace(
        "import torch\n", "import numpy as np\nimport torch\n", 1)}
    assert _guard(rng, "train.py", "default_rng(1234)", "default_rng(7)", "val_f1") == \
        ["train.py: line 9 (where the metric is computed or the data split)"]
    assert _guard(rng, "train.py", "lr=1e-3", "lr=3e-3", "val_f1") == []


def test_which_run_a_tuner_reports_is_held_where_it_is_picked() -> None:
    # Ray Tune: `get_best_result(scope="all")` would report the best epoch of any trial, not the last; the pick is
    # held whether it has a line of its own or follows `tuner.fit()` in one statement, and the trials' budget stays
    # free
    two_lines = {"tune_mnist.py": RAY_TUNE["tune_mnist.py"].replace(
        "best = tuner.fit().get_best_result()", "results = tuner.fit()\nbest = results.get_best_result()")}
    one_line = RAY_TUNE
    for files in (two_lines, one_line):
        line = files["tune_mnist.py"].splitlines().index(next(
            x for x in files["tune_mnist.py"].splitlines() if "get_best_result" in x)) + 1
        assert _guard(files, "tune_mnist.py", "get_best_result()", 'get_best_result(scope="all")', "best_val_acc") \
            == [f"tune_mnist.py: line {line} (where the metric is computed or the data split)"]
        assert _guard(files, "tune_mnist.py", "NUM_SAMPLES = 20", "NUM_SAMPLES = 200", "best_val_acc") == []
    # the statement that names the metric a tuner selects by reports nothing: its mode, search space and inline
    # number of trials stay free; the metric it selects by is a setting of the measurement
    inline = {"tune_mnist.py": RAY_TUNE["tune_mnist.py"].replace("num_samples=NUM_SAMPLES", "num_samples=20")}
    assert _guard(inline, "tune_mnist.py", "num_samples=20", "num_samples=200", "best_val_acc") == []
    assert _guard(inline, "tune_mnist.py", 'mode="max"', 'mode="min"', "best_val_acc") == []
    assert _guard(inline, "tune_mnist.py", "tune.loguniform(1e-4, 1e-1)", "tune.loguniform(1e-5, 1e-1)",
                  "best_val_acc") == []
    assert _guard(inline, "tune_mnist.py", 'metric="val_acc"', 'metric="train_acc"', "best_val_acc") != []
    # what training returns and nothing picks from it stays free to train differently
    keras_history = {"train.py": '''\
from tensorflow import keras
(x, y), (xv, yv) = keras.datasets.mnist.load_data()
model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
h = model.fit(x, y, epochs=5, validation_data=(xv, yv))
print(f"val_accuracy={h.history['val_accuracy'][-1]:.4f}")
'''}
    assert _guard(keras_history, "train.py", "epochs=5", "epochs=8", "val_accuracy") == []
    early = {"train.py": keras_history["train.py"].replace(
        "h = model.fit(x, y, epochs=5, validation_data=(xv, yv))",
        'stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3)\n'
        "h = model.fit(x, y, epochs=5, validation_data=(xv, yv), callbacks=[stop])")}
    assert _guard(early, "train.py", "patience=3", "patience=5", "val_accuracy") == []
    assert _guard(early, "train.py", "validation_data=(xv, yv)", "validation_data=(x[:100], y[:100])",
                  "val_accuracy") != []


THRESHOLD = {"train.py": '''\
import torch
from torch import nn

THRESH = 0.5
EVAL_BS = 256
LR = 1e-3
d = torch.load("d.pt")
x, y, xv, yv = d["x"], d["y"], d["xv"], d["yv"]
model = nn.Linear(10, 1)
opt = torch.optim.Adam(model.parameters(), lr=LR)


def evaluate(model, xv, yv):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xv), EVAL_BS):
            probs = torch.sigmoid(model(xv[i:i + EVAL_BS]).squeeze(1))
            correct += ((probs > THRESH).float() == yv[i:i + EVAL_BS]).sum().item()
    return correct / len(yv)


for i in range(0, len(x), 64):
    opt.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(model(x[i:i + 64]).squeeze(1), y[i:i + 64]).backward()
    opt.step()
print(f"val_acc={evaluate(model, xv, yv):.4f}")
'''}


def test_a_setting_only_the_measurement_reads_is_held_and_one_the_training_reads_is_not() -> None:
    # a decision threshold is measurement wherever it is written: read by an evaluation function or an inline loop
    inline = {"train.py": THRESHOLD["train.py"].replace('print(f"val_acc={evaluate(model, xv, yv):.4f}")', '''\
with torch.no_grad():
    probs = torch.sigmoid(model(xv).squeeze(1))
    correct = 0
    for p, t in zip(probs, yv):
        correct += int((p > THRESH) == t)
acc = correct / len(yv)
print(f"val_acc={acc:.4f}")''')}
    for files in (THRESHOLD, inline):
        assert _guard(files, "train.py", "THRESH = 0.5", "THRESH = 0.3", "val_acc") == \
            ["train.py: THRESH (a setting only the measurement reads)"]
        # the evaluation's batch size only sets the speed; the learning rate is the training's
        assert _guard(files, "train.py", "EVAL_BS = 256", "EVAL_BS = 512", "val_acc") == []
        assert _guard(files, "train.py", "LR = 1e-3", "LR = 3e-3", "val_acc") == []
    # read by the training as well, it is a setting of the model
    shared = {"train.py": THRESHOLD["train.py"].replace("lr=LR)", "lr=LR * THRESH)")}
    assert _guard(shared, "train.py", "THRESH = 0.5", "THRESH = 0.3", "val_acc") == []
