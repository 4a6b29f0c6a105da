"""Which kind of knob a name is (learning rate, width, seed, logging cadence, a data shape, ...), from its words.

The kind decides whether a knob is searched at all (seeds, logging and data shapes never are) and how a policy moves
it; a name is split into words (camelCase, snake_case, dotted paths) and read the way a person reads it, never by a
file or section it sits in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from nightlab.agent.policy.knobs.knob import UNTUNABLE_KINDS, Knob, Value

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")  # EMAConfig → EMA_Config
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _tokens(name: str) -> list[str]:
    """Split an identifier, option or key into lowercase words: ``nEpochs`` → n, epochs; ``--weight-decay`` →
    weight, decay; trailing digits dropped (``beta1`` → beta) so numbered variants classify like the base word."""
    words = _NON_ALNUM.split(_CAMEL.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", name)).lower())
    out = []
    for w in words:
        if not w:
            continue
        stripped = w.rstrip("0123456789")
        out.append(stripped if len(stripped) > 1 else w)  # beta1 → beta, lr0 → lr, but l2 stays l2
    return out


_LOG_WHAT = frozenset({"log", "logging", "print", "eval", "evaluate", "evaluation", "save", "ckpt", "checkpoint",
                       "report", "display", "val", "valid", "validation", "test", "sample", "plot"})
_LOG_FREQ = frozenset({"every", "interval", "freq", "frequency", "iters", "iter", "steps", "period", "n"})
_LOG_ALONE = frozenset({"verbose", "verbosity", "workers", "worker", "jobs", "pin", "gpus", "progress", "debug",
                        "logging", "log", "quiet", "nthread", "nthreads"})
# settings of how a prediction is scored or decoded, not of what is learned: a detection threshold, NMS's IoU, beam
# search, sampling's new tokens and top-k / top-p, a diffusion sampler's steps and guidance. Searched, they change what
# is measured (a threshold of 0.5 stepped ×10 past 1 marks nothing positive), so they are never knobs to tune.
_MEASURE = frozenset({"threshold", "thresh", "thres", "thr", "nms", "iou", "beams", "beam", "inference", "guidance",
                      "decode", "decoding"})
_MEASURE_JOINED = frozenset({"top_k", "top_p", "topk", "topp", "max_new_tokens", "new_tokens"})
# the length of what a sequence model is scored against or generates (run_translation's `max_target_length`, which
# truncates the evaluation's references too, `generation_max_length`): a shorter one scores a shorter answer, so it is
# never searched; the length of the input (`max_source_length`, `block_size`) is the model's and is
_TARGET_SIDE = frozenset({"target", "generation", "gen", "label", "labels", "answer", "summary", "reference"})
# a dataset's size (`N_SAMPLES = 10_000` for synthetic data, `subset_size`): changing it changes the data measured on
_DATA_SIZE = frozenset({"samples", "examples", "subset", "dataset"})
# the start point of a warm-up (timm's `warmup_lr` 1e-6, YOLO's `warmup_bias_lr` and `warmup_momentum`, detectron2's
# `WARMUP_FACTOR` 1/1000), not its length: a warm-up knob is searched as a length or a share of training
_WARMUP_START = frozenset({"lr", "eta", "momentum", "bias", "factor", "init", "start", "value"})
_WARMUP_LENGTH = frozenset({"epochs", "epoch", "ratio", "fraction", "frac", "proportion", "pct", "percent", "length",
                            "len", "period", "steps", "step", "iters", "iter", "iterations", "updates"})
# what modifies a learning-rate schedule rather than setting a rate: timm's `lr_base_size` (a batch size the rate is
# scaled from), `lr_cycle_limit`, `lr_cycle_mul`, `lr_noise_pct`, `lr_noise_std`
_LR_MODIFIERS = frozenset({"size", "cycle", "noise", "limit", "pct", "std"})
# PPO's clipped objective (`clip_range`, `clip_coef`, `clip_param`, `clip_epsilon`): a ratio's trust region in (0, 1),
# not a gradient norm
_POLICY_CLIP = frozenset({"range", "coef", "param", "epsilon", "eps"})
# where and how the program runs, not what it learns: a Lightning `devices: 1` searched ×4, or `precision: 32` ×4,
# asks for hardware or a number format that is not there; toggling `deterministic` or `compile` changes speed and
# reproducibility (and torch.compile needs a compiler). Never searched, as a logging cadence is not.
_MACHINE = frozenset({"devices", "device", "nodes", "precision", "compile", "deterministic", "fp", "bf",
                      "cudnn"})  # (`fp16` splits to fp: trailing digits are dropped)
_TREE_NODES = frozenset({"leaf", "leaves", "hidden", "max", "min", "tree"})  # nodes of a tree or a layer
# checkpoint bookkeeping (`save_top_k`, `save_last`, `keep_checkpoint_max`): what is kept on disk, not learned
_CHECKPOINTS = frozenset({"save", "ckpt", "checkpoint", "checkpoints"})
# a size next to one of these words is a layer's width (the Lightning-Hydra template's `lin1_size: 64`)
_LAYERISH = frozenset({"lin", "linear", "fc", "mlp", "dense", "proj", "layer", "layers"})
_SPLIT_WORDS = frozenset({"split", "splits", "fold", "folds", "kfold", "holdout", "cv"})
_SPLIT_PART = frozenset({"test", "val", "valid", "validation", "train", "dev", "holdout"})
_SPLIT_SIZE = frozenset({"size", "frac", "fraction", "ratio", "pct", "percent", "n", "num", "samples", "count",
                         "portion", "share", "prop", "proportion"})
_LR_SCHED = frozenset({"decay", "gamma", "factor", "patience", "milestones", "milestone", "schedule", "scheduler",
                       "sched", "mult", "step", "steps", "iters", "iter", "epochs", "epoch", "drop", "ratio", "warm"})
# boosting rounds count the training as steps do (`n_estimators`, LightGBM's `num_trees`): the run time grows with them
_STEPS = frozenset({"steps", "step", "iters", "iter", "iterations", "iteration", "updates", "rounds", "round",
                    "estimators", "trees"})
# short names of a boosted or bagged ensemble's size (`est` alone would also be an estimate: `est_loss`)
_TREE_COUNTS = frozenset({"n_est", "num_est", "nrounds", "nround", "ntree", "ntrees"})
_DROPOUT = frozenset({"dropout", "drop", "pdrop", "droprate"})
_MOMENTUM = frozenset({"momentum", "beta", "betas", "ema", "polyak", "b1", "b2"})  # averages: β (optax's b1), EMA
# a normalisation layer's running-statistics momentum: torch's 0.1 (0 freezes the statistics) or Keras's 0.99
_NORM_WORDS = frozenset({"bn", "norm", "batchnorm", "batchnormalization"})
_CLIP = frozenset({"clip", "clipping", "clipnorm"})
_SEQ = frozenset({"seq", "sequence", "context", "ctx", "bptt", "seqlen", "maxlen", "window"})
_FIXED = frozenset({"input", "in", "out", "output", "classes", "class", "nclass", "ncls", "nc", "vocab", "labels",
                    "img", "image", "pixels", "pixel", "resolution", "height", "features", "feature", "channel",
                    # what sets a tensor's shape: a convolution's geometry, a ViT's patch, YOLO's `imgsz`, a crop
                    "kernel", "stride", "padding", "dilation", "patch", "imgsz", "crop", "resize"})
_DEPTH = frozenset({"layers", "layer", "depth", "blocks", "nlayers", "nlayer", "stages"})
_SIZEISH = frozenset({"size", "sizes", "dim", "dims", "width", "units", "channels"})
_WIDTH = frozenset({"hidden", "width", "units", "channels", "dim", "dims", "embd", "emb", "embed", "embedding",
                    "filters", "neurons", "ff", "ffn", "feedforward", "nhid", "hid", "sizes", "nembd", "dmodel"})


# what a tree's node split needs (scikit-learn's `min_samples_split`, LightGBM's `min_split_gain`, XGBoost's
# `min_split_loss`, a params.yaml `min_split` handed to it): a setting of the model, not a split of the data
_TREE_SPLIT = frozenset({"min", "gain", "loss"})
# A real value in (0, 1] named as a share of something (a subsample, a fraction, a probability) means nothing above
# 1, and libraries refuse it: scikit-learn's and XGBoost's `subsample` and `colsample_bytree`, LightGBM's
# `bagging_fraction`. Searched ×10 around it like any unnamed real, `subsample = 0.8` was stepped to 2.4 and crashed
# the run. A share of the whole may be all of it (`subsample = 1.0` is the default); a probability or ratio of 1 is
# degenerate (every sample augmented, every token masked, every label smoothed away), so it stops at 0.95.
_SHARE_WHOLE = frozenset({"subsample", "colsample", "frac", "fraction", "keep", "bagging", "share", "portion",
                          "proportion", "pct", "percent"})
_SHARE_PART = frozenset({"p", "prob", "probability", "ratio", "smoothing"})


def tree_split(name: str) -> bool:
    """Whether a name with the word `split` in it is a tree's node-splitting rule (`min_samples_split`,
    `min_split_gain`), not a data split: a minimum or a gain qualifies it, and nothing names a held-out part or a
    fold (`min_val_split` stays a data split)."""
    t = set(_tokens(name))
    return bool(t & {"split", "splits"}) and bool(t & _TREE_SPLIT) \
        and not t & (_SPLIT_PART | (_SPLIT_WORDS - {"split", "splits"}))


def classify(name: str) -> str:
    """The kind of a knob from its name alone (the last component of a dotted name or an option).

    Returns one of lr, batch_size, width, depth, epochs, steps, dropout, weight_decay, momentum, warmup, clip,
    seq_len, seed, logging, fixed, other — or ``split`` for data-splitting values, which are never made knobs
    because changing the evaluation split changes the metric rather than the model.
    """
    toks = _tokens(name)
    t = set(toks)
    joined = "_".join(toks)
    if not toks:
        return "other"
    if _hydra_key(name):
        return "fixed"
    if "seed" in t or "random_state" in joined or joined in {"rng", "random"}:
        return "seed"
    if (t & _LOG_WHAT and t & _LOG_FREQ and "batch" not in t) or t & _LOG_ALONE or t & _CHECKPOINTS:
        return "logging"
    machine = t & _MACHINE
    if machine == {"nodes"} and t & _TREE_NODES:  # scikit-learn's `max_leaf_nodes`: a tree's size, not machines
        machine = set()
    if machine and not any(x.startswith("batch") for x in toks):  # HF's per_device_train_batch_size is a batch
        return "logging"
    if t & _MEASURE or joined in _MEASURE_JOINED or joined.endswith("_new_tokens"):
        return "fixed"
    if t & _TARGET_SIDE and t & {"length", "len"}:
        return "fixed"
    if t & _DATA_SIZE and t & {"n", "num", "total", "size", "count"} \
            and not t & (_SHARE_WHOLE | _SHARE_PART | {"batch"}):
        return "fixed"
    if "warmup" in t or "warm" in t:
        if t & _WARMUP_START and not t & _WARMUP_LENGTH:
            return "fixed"
        return "warmup"
    if t & {"accum", "accumulate", "accumulation"}:
        return "other"
    lr_like = "lr" in t or {"learning", "rate"} <= t or {"learn", "rate"} <= t or t & {"eta"}  # (thinc's learn_rate)
    if lr_like:
        if t & _LR_MODIFIERS and "batch" not in t:
            return "fixed"
        if t & _LR_SCHED:
            if t & _STEPS and "size" not in t:
                return "steps"
            if t & {"epochs", "epoch"}:
                return "epochs"
            return "other"
        return "lr"
    if {"early", "stopping"} <= t or "patience" in t:  # how long to wait for progress, not how long to train
        return "other"
    if t & _MOMENTUM and t & _NORM_WORDS:  # `batch_norm_momentum` is no batch size; bounded in `_bounded_space`
        return "other"
    if "batches" in t:  # a count of batches, not a batch's size: Lightning's `limit_train_batches`, `num_batches`
        # a cap named `limit` is a debugging switch (1.0 = all of them, 10 = ten batches): never searched
        return "logging" if "limit" in t else "steps"
    if any(x.startswith("batch") for x in toks) or t & {"bs", "bsz", "mbs"}:
        return "batch_size"
    if any(x.startswith("epoch") for x in toks):
        return "epochs"
    if t & _STEPS and "decay" in t and not t & {"size", "lr", "max", "total", "train", "training"}:
        return "other"  # Keras' / optax's `decay_steps`: the schedule's period, not how long it trains
    if (t & _STEPS and not t & {"size", "lr"}) or {"total", "timesteps"} <= t:  # SB3's `learn(total_timesteps=...)`
        return "steps"
    if joined in _TREE_COUNTS:  # DVC's example `train.n_est`, R-style `nrounds` / `ntree`: the ensemble's size
        return "steps"
    if (t & _SPLIT_WORDS or (t & _SPLIT_PART and t & _SPLIT_SIZE)) and not tree_split(name):
        return "split"
    if "smoothing" in t:
        return "other"
    if t & _DROPOUT or any(x.endswith("pdrop") or x.startswith("dropout") for x in toks):
        return "dropout"
    if {"weight", "decay"} <= t or t & {"wd", "l2", "weightdecay"}:
        return "weight_decay"
    if t & _MOMENTUM:
        return "momentum"
    if t & _CLIP and t & _POLICY_CLIP and not t & {"grad", "norm"}:
        return "other"  # searched in (0, 1) by `_bounded_space`
    if t & _CLIP or ({"grad", "norm"} <= t) or ({"max", "norm"} <= t):
        return "clip"
    if t & _SEQ or ({"block", "size"} <= t) or ({"max", "len"} <= t) or ({"max", "length"} <= t):
        return "seq_len"
    # `in` / `out` name a shape at either end (`in_features`, `d_out`), not inside a phrase (`min_data_in_leaf`)
    shape = (t - {"in", "out"}) & _FIXED or {toks[0], toks[-1]} & {"in", "out"}
    if shape and "hidden" not in t and not t & _SHARE_WHOLE:  # LightGBM's feature_fraction is a knob
        return "fixed"
    if t & _DEPTH and not t & _SIZEISH and not t & {"decay", "scale"}:  # BEiT's `layer_decay` is a factor
        return "depth"
    if t & _WIDTH or {"d", "model"} <= t or (t & _SIZEISH and t & _LAYERISH):
        return "width"
    return "other"


# A generic word (`decay`, `rate`) under a key naming a weight average (`ema: {decay: 0.9999}`, `EMAConfig.decay`)
# is that average's coefficient: a momentum-like knob that must stay below 1, not an "other" searched ×10 around it.
_AVERAGE_OWNERS = frozenset({"ema", "polyak"})
_AVERAGE_LEAVES = frozenset({"decay", "rate", "beta", "alpha", "momentum", "factor"})


def _hydra_key(key: object) -> bool:
    """Hydra's own keys (`_target_`, `_partial_`, `_recursive_`, `_convert_`): how a config is built, not a setting."""
    return isinstance(key, str) and len(key) > 2 and key.startswith("_") and key.endswith("_")


def classify_path(parts: Sequence[str]) -> str:
    """`classify` of the last part of a dotted name, where the parts before it settle a generic word: ``ema.decay``
    and ``EMAConfig.decay`` are momentum-like, as ``ema_decay`` is."""
    kind = classify(parts[-1])
    if (kind == "other" and len(parts) > 1 and set(_tokens(parts[-1])) <= _AVERAGE_LEAVES
            and any(set(_tokens(p)) & _AVERAGE_OWNERS for p in parts[:-1])):
        return "momentum"
    return kind


# Kinds whose values are counts: an int literal stays an int and the search space is integer.
_INT_KINDS = frozenset({"batch_size", "width", "depth", "epochs", "steps", "seq_len"})
# Kinds that are inherently real-valued: an int literal (``LR = 1``) is rewritten as a float, never rounded to 0.
_FLOAT_KINDS = frozenset({"lr", "dropout", "weight_decay", "momentum", "clip"})
# Names of kind "other" that are real-valued even when written as ints (``C=1``, ``alpha=1``): searched as floats and
# rewritten as floats, where "ints stay ints" would round 0.5 to 0.
_FLOAT_NAMES = frozenset({"c", "alpha", "gamma", "l1_ratio", "subsample", "colsample_bytree", "eta_min", "factor",
                          "label_smoothing", "epsilon", "nu", "reg_alpha", "reg_lambda", "ccp_alpha",
                          "min_child_weight", "temperature", "lambda", "lambda_l1", "lambda_l2", "tol", "var_smoothing",
                          "min_impurity_decrease", "pct_start", "min_delta"})
# Kinds worth making knobs of even where only a known kind qualifies (function bodies, signatures, inline calls).
_KNOWN = frozenset({"lr", "batch_size", "width", "depth", "epochs", "steps", "dropout", "weight_decay", "momentum",
                    "warmup", "clip", "seq_len", "seed", "logging"})
_TUNABLE_KNOWN = _KNOWN - UNTUNABLE_KINDS
# A list under a key of this kind is a list of knobs of the mapped kind (``hidden_sizes: [64, 32]``, ``betas``).
_ELEMENT_KIND = {"width": "width", "depth": "width", "momentum": "momentum", "dropout": "dropout"}


# Choice knobs: strings that name an optimizer / activation / schedule. Alternatives are offered only when the code
# plausibly accepts them: torch class names always work through getattr, others must be mentioned in the repo.
_OPT_WORDS = frozenset({"optimizer", "optim", "opt", "solver", "optimiser"})
_ACT_WORDS = frozenset({"activation", "act", "nonlinearity", "nonlin", "activ"})
_SCHED_WORDS = frozenset({"scheduler", "schedule", "sched"})
_GROUPS: dict[str, tuple[str, ...]] = {
    "opt_torch": ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"),
    "opt": ("sgd", "adam", "adamw", "rmsprop", "adagrad"),
    "solver": ("lbfgs", "sgd", "adam"),
    "act_torch": ("ReLU", "GELU", "Tanh", "SiLU", "ELU", "LeakyReLU"),
    "act": ("relu", "gelu", "tanh", "silu", "elu", "leaky_relu"),
    "act_sklearn": ("identity", "logistic", "tanh", "relu"),
    "sched": ("cosine", "linear", "constant", "step", "exponential", "onecycle", "plateau", "none"),
}
# Families fixed by a library API rather than by the repo: torch class names (through getattr) and the sklearn
# MLP estimators' solver / activation strings.
_ALWAYS_VALID_GROUPS = frozenset({"opt_torch", "act_torch", "act_sklearn", "solver"})
_CHOICE_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,30}")


def _choice_group(name: str, value: str, callee: str | None = None) -> str | None:
    """Which family of alternatives a string knob belongs to, or None if it is not an obvious choice."""
    if not _CHOICE_VALUE.fullmatch(value):
        return None
    parts = [p for p in re.split(r"[.\[\]]", name) if p and not p.isdigit()]
    if not parts:
        return None
    last = set(_tokens(parts[-1].lstrip("-$")))
    if last <= {"name", "type", "kind", "class", "cls", "algo"} and len(parts) > 1:
        last = set(_tokens(parts[-2].lstrip("-$")))
    if last & _OPT_WORDS:
        if value in _GROUPS["opt_torch"]:
            return "opt_torch"
        if "solver" in last or value.lower() == "lbfgs":
            return "solver"
        return "opt" if value.lower() in _GROUPS["opt"] else None
    if last & _ACT_WORDS:
        if value in _GROUPS["act_torch"]:
            return "act_torch"
        if value in {"logistic", "identity"} or (callee or "").startswith("MLP"):
            return "act_sklearn"
        return "act" if value.lower() in _GROUPS["act"] else None
    if last & _SCHED_WORDS:
        return "sched"
    return None


def name_words(name: str) -> list[str]:
    """The lowercase words of a knob's name without its file (``config/a.py:lr_decay_iters`` → lr, decay, iters)."""
    return _tokens(name.rsplit(":", 1)[-1])


def schedule_length(name: str) -> bool:
    """Whether a knob is the length of the learning-rate schedule (``lr_decay_iters``, ``lr_decay_epochs``): it is
    classified as steps or epochs, so that it follows the training length it belongs with, but changed alone it
    reshapes the schedule and trains no longer."""
    t = set(name_words(name))
    lr_like = "lr" in t or {"learning", "rate"} <= t or {"learn", "rate"} <= t or bool(t & {"eta"})
    return lr_like and classify(name.rsplit(":", 1)[-1]) in ("steps", "epochs")


def choice_group(name: str, value: str, callee: str | None = None) -> str | None:
    """The family of alternatives a string setting belongs to (optimizers, activations, schedules), or None."""
    return _choice_group(name, value, callee)


def choices_for(name: str, value: str, texts: Sequence[str]) -> tuple[Value, ...]:
    """Alternatives for a string setting named `name` (see `_choices`); () when it is not a known choice."""
    group = _choice_group(name, value)
    return _choices(group, value, texts) if group is not None else ()


def _mentioned(word: str, texts: Iterable[str]) -> bool:
    """Whether the repo names `word` as a value it could take: in a comparison, a list of choices, a dict key, a
    comment. Not a method or attribute (`optimizer.step()` does not make "step" a schedule) nor another setting's
    value (`report_to="none"` does not make "none" a schedule HF accepts)."""
    pat = re.compile(rf"(?<![A-Za-z0-9_.]){re.escape(word)}(?![A-Za-z0-9_(])")
    for t in texts:
        for m in pat.finditer(t):
            before = t[max(0, m.start() - 40):m.start()]
            quoted = before.endswith(("'", '"'))
            if quoted and re.search(r"(?<![=!<>])=\s*[\"']$", before):
                continue  # `report_to="none"`, `x = "none"`: something else set to it
            return True
    return False


def _choices(group: str, value: str, texts: Sequence[str]) -> tuple[Value, ...]:
    """Alternatives for a choice knob: the whole family when a library API fixes it (torch class names reached
    through getattr, sklearn MLP solver/activation), otherwise only the members the repo mentions somewhere — a
    config value the code never compares against would just crash the run."""
    members = _GROUPS[group]
    always = group in _ALWAYS_VALID_GROUPS
    out = [m for m in members if always or m == value or _mentioned(m, texts)]
    if value not in out:
        out.insert(0, value)
    return tuple(out)


def _real_valued(knob: Knob) -> bool:
    """Whether the knob is a real number by nature, whatever its current literal looks like."""
    if knob.kind in _FLOAT_KINDS:
        return True
    last = re.split(r"[.:$]", _local_name(knob).split("#")[0].split("[")[0])[-1].lstrip("-")
    return knob.kind == "other" and last.lower().replace("-", "_") in _FLOAT_NAMES


def _local_name(knob: Knob) -> str:
    prefix = f"{knob.path}:"
    return knob.name[len(prefix):] if knob.name.startswith(prefix) else knob.name
