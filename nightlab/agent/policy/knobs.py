"""Knobs: the tunable values of a training repo, found in any common code style and rewritten in place.

The builtin (offline) policy cannot write arbitrary code, so its whole reach is "change a number". That only works
if it can find the numbers wherever people put them — module constants, config dicts, dataclass defaults, argparse
defaults, YAML/JSON configs, literals inline in calls — and change one of them without disturbing anything else:
the diff a human reviews must show exactly one literal changed, with comments and spacing intact.

How it is done, and why:

* Python goes through libcst, a concrete syntax tree, never through regexes over code, and through its public API
  only. One visit of the tree (`_PyScanner`, a `CSTVisitor`; it does not descend where no literal can be, since libcst
  rebuilds every node it walks) claims the literals that are knobs, and counts the literal tokens (numbers, strings,
  True/False/None) in source order; the standard tokenizer lists the same tokens with their positions, so the n-th
  literal of the tree is the n-th literal token of the text. Where the two do not line up (a claimed literal inside an
  f-string, a tokenizer that disagrees), libcst's `ByteSpanPositionProvider` gives the exact spans instead: it is a
  code-generation pass plus a second walk of the tree over every node, about twice the cost, so it is the fallback,
  not the rule (bench/knobs.py has the figures).
* YAML uses PyYAML's composer, whose scalar nodes carry exact start/end marks; JSON uses a small position-aware
  scanner (falling back to the composer for JSON-ish files the scanner rejects); TOML, gin bindings and INI-style
  files (configparser's, spaCy's config.cfg) are read line by line. Rewriting splices only that span.
* A knob's name is derived from the code structure (``CONFIG.lr``, ``TrainConfig.lr``, ``--lr``, ``SGD.lr``), so it
  is stable while values change; `rewrite` re-discovers by name rather than trusting stored offsets.
* Literals whose change would break the program or game the metric are left alone: positional layer sizes,
  data-splitting arguments, seeds inside calls. Seeds and logging cadences elsewhere are discovered but marked
  (`Knob.tunable` is False) so a policy can show them without searching over them.
"""

from __future__ import annotations

import ast
import bisect
import functools
import io
import json
import math
import re
import tokenize
import tomllib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import libcst as cst
import yaml
from libcst.metadata import ByteSpanPositionProvider, MetadataWrapper

__all__ = [
    "UNTUNABLE_KINDS",
    "Knob",
    "Space",
    "choice_group",
    "choices_for",
    "classify",
    "discover",
    "discover_files",
    "format_value",
    "name_words",
    "rewrite",
    "search_space",
    "span",
    "tree_split",
]

Value = int | float | bool | str

# Kinds a policy should never search over: they change what is reproduced or how much is printed, not what is learned.
# "fixed" covers data-shape constants (input size, number of classes, vocabulary) that the code cannot survive changing.
UNTUNABLE_KINDS: frozenset[str] = frozenset({"seed", "logging", "fixed"})

_MAX_TEXT = 3_000_000  # characters; larger files are data, not code or config
_MAX_CONFIG_SCALARS = 5_000  # a YAML/JSON file with more scalars than this is a data file


@dataclass(frozen=True)
class Knob:
    """One tunable literal in one file.

    `name` is derived from structure (never from the value or an offset), so the same knob keeps its name across
    edits of the file; duplicates within a file get ``#2``, ``#3`` in source order, and `discover_files` prefixes
    ``path:`` when two files would otherwise share a name.
    """

    name: str
    path: str
    value: Value
    kind: str
    style: str  # constant | dict | dataclass | argparse | yaml | json | toml | call | signature | env | getattr
    line: int
    context: str
    choices: tuple[Value, ...] = ()  # known alternatives for "choice" knobs (and argparse `choices=`)

    @property
    def tunable(self) -> bool:
        """False for seeds, logging cadence and data-shape constants: shown, never searched."""
        return self.kind not in UNTUNABLE_KINDS


@dataclass
class Space:
    """Where a model-based search may look for a knob's value.

    `low`/`high` are ignored when `choices` is set. `allow_zero` says 0 is a meaningful special value (weight decay
    off, no clipping) even though a log-scaled range cannot contain it. `pow2` says powers of two are preferred.
    `log1m` says the value is an averaging coefficient (a momentum, Adam's β) searched on log(1 − x): what it sets is
    the horizon 1/(1 − x) of the average, so 0.99 → 0.997 is as large a move as 0.9 → 0.97, and a uniform draw over
    [0, 0.99] (median 0.5, a quarter of draws below 0.25) is not a sensible search for a β that works at 0.9–0.999.
    """

    low: float
    high: float
    log: bool
    integer: bool
    choices: list[Value] | None = None
    pow2: bool = False
    allow_zero: bool = False
    log1m: bool = False
    multiple: int = 0  # an integer knob that must stay a multiple of this (a model width split over attention heads)

    def snap(self, x: float, sig: int = 3) -> Value:
        """Clip `x` into the space and round it to something a human would write (ints, powers of two, `sig`
        significant digits), so that proposed diffs read ``lr = 0.003`` instead of ``lr = 0.0031622776601683794``."""
        if self.choices:
            return min(self.choices, key=lambda c: abs(float(c) - x) if isinstance(c, int | float) else 0.0)
        x = min(max(x, self.low), self.high)
        if self.integer:
            m = max(1, self.multiple)
            if self.pow2 and x > 0:
                cands = [2 ** math.floor(math.log2(x)), 2 ** math.ceil(math.log2(x))]
                inside = [c for c in cands if self.low <= c <= self.high and c % m == 0]
                if inside:
                    return min(inside, key=lambda c: abs(math.log2(c) - math.log2(x)))
            lo, hi = math.ceil(self.low / m) * m, math.floor(self.high / m) * m
            return int(min(max(round(x / m) * m, lo), hi)) if lo <= hi else int(min(max(round(x), lo), hi))
        if x == 0:
            return 0.0
        if self.log1m and x > 0:  # round the horizon's digits: 0.99667 reads 0.9967, not 1.0
            return min(self.high, max(self.low, 1.0 - float(f"{1.0 - x:.{sig}g}")))
        return float(f"{x:.{sig}g}")


# --------------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------------------
# Python: libcst
# --------------------------------------------------------------------------------------------------------------------

_DICT_LIKE = frozenset({"dict", "SimpleNamespace", "Namespace", "EasyDict", "edict", "ConfigDict", "AttrDict", "Box",
                        "DictConfig"})
_SKIP_CALLS = frozenset({"train_test_split", "KFold", "StratifiedKFold", "GroupKFold", "ShuffleSplit",
                         "StratifiedShuffleSplit", "RepeatedKFold", "RepeatedStratifiedKFold", "TimeSeriesSplit",
                         "LeaveOneOut", "PredefinedSplit", "GroupShuffleSplit", "random_split", "cross_val_score",
                         "cross_validate", "cross_val_predict", "manual_seed", "manual_seed_all", "seed", "set_seed",
                         "seed_everything", "default_rng", "RandomState", "Generator", "PRNGKey", "randn", "rand",
                         "randint", "normal", "uniform", "print", "range", "trange", "enumerate", "zip", "round"})
_DROPOUT_CALLS = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
                            "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout"})
_DROPOUT_FUNCS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"})
_OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
                         "Nadam", "Lion", "Adafactor", "LBFGS", "SparseAdam", "ASGD", "Rprop", "Ftrl"})
_CLIP_FUNCS = {"clip_grad_norm_": "max_norm", "clip_grad_norm": "max_norm", "clip_grad_value_": "clip_value"}
# Call keywords that are kinds we always trust inline (optimizer, loader, trainer arguments)...
_CALL_KINDS = frozenset({"lr", "batch_size", "epochs", "steps", "dropout", "weight_decay", "momentum", "warmup",
                         "clip", "depth"})
# ...and estimator / scheduler keywords of kind "other" that are nonetheless standard hyperparameters.
_SAFE_CALL_KW = frozenset({"C", "alpha", "gamma", "l1_ratio", "n_estimators", "min_samples_split",
                           "min_samples_leaf", "max_features", "max_leaf_nodes", "min_child_weight", "subsample",
                           "colsample_bytree", "num_leaves", "reg_alpha", "reg_lambda", "n_neighbors", "n_components",
                           "degree", "epsilon", "nu", "ccp_alpha", "label_smoothing", "T_max", "T_0", "T_mult",
                           "step_size", "eta_min", "factor", "patience", "pct_start", "hidden_layer_sizes",
                           "dim_feedforward", "betas", "n_iter_no_change", "l2_leaf_reg", "min_delta", "max_samples",
                           "var_smoothing", "lambda_l1", "lambda_l2", "min_impurity_decrease"})
_SAFE_WIDTH_KW = frozenset({"hidden_layer_sizes", "dim_feedforward"})
def _literal_choices(node: cst.BaseExpression | None) -> tuple[Value, ...]:
    """The values of a literal list / tuple / set of choices (argparse's `choices=`, absl's enum values); () when
    one is not a literal."""
    if not isinstance(node, cst.List | cst.Tuple | cst.Set):
        return ()
    lits = [_py_literal(el.value) for el in node.elements]
    return tuple(x for x in lits if x is not None) if all(x is not None for x in lits) else ()


# fastai's Learner methods that train, with the names of their first two parameters (epochs, learning rate)
_FASTAI_FITS = {"fit_one_cycle": ("n_epoch", "lr_max"), "fine_tune": ("epochs", "base_lr"),
                "fit_flat_cos": ("n_epoch", "lr"), "fit_sgdr": ("n_cycles", "lr_max")}
# absl's flag definitions (`flags.DEFINE_float(name, default, help)`): read like argparse's `add_argument`
_ABSL_DEFINES = frozenset({"DEFINE_float", "DEFINE_integer", "DEFINE_string", "DEFINE_bool", "DEFINE_boolean",
                           "DEFINE_enum"})
_CALL_FLAG_KW = frozenset({"nesterov", "amsgrad", "early_stopping", "bootstrap"})
_CONFIG_CLASS = re.compile(r"config|cfg|conf$|args|arguments|hparams|hyper|params|settings|options|opts|defaults|"
                           r"^hps?$", re.IGNORECASE)
_CONFIG_BASES = frozenset({"BaseModel", "BaseSettings", "NamedTuple", "Config", "Struct"})
_DATACLASS_DECOS = frozenset({"dataclass", "define", "frozen", "attrs", "mutable", "pydantic_dataclass"})
_CONFIG_VAR = re.compile(r"config|cfg|conf$|hparams|hyper|params|settings|options|opts|defaults|args",
                         re.IGNORECASE)
# Config-node constructors: a variable made by one of these holds settings whatever it is called (yacs's `_C = CN()`
# in Swin's / HRNet's defaults.py, `__C = edict()`, `C = ml_collections.ConfigDict()`)
_CONFIG_CTORS = frozenset({"CN", "CfgNode", "ConfigDict", "FrozenConfigDict", "EasyDict", "edict", "AttrDict",
                           "SimpleNamespace", "Namespace", "DictConfig"})
_NUMBER = re.compile(r"[+-]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?")
_INT_TEXT = re.compile(r"[+-]?\d[\d_]*")

_Literal = cst.Integer | cst.Float | cst.Name | cst.SimpleString


def _py_literal(node: cst.BaseExpression) -> Value | None:
    """The Python value of a plain literal node (numbers, signed numbers, True/False, simple strings), else None."""
    try:
        if isinstance(node, cst.Integer):
            return int(ast.literal_eval(node.value))
        if isinstance(node, cst.Float):
            f = float(ast.literal_eval(node.value))
            return f if math.isfinite(f) else None
        if isinstance(node, cst.Name):
            return {"True": True, "False": False}.get(node.value)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus | cst.Plus):
            inner = node.expression
            if isinstance(inner, cst.Integer | cst.Float) and not inner.lpar:
                v = _py_literal(inner)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    return -v if isinstance(node.operator, cst.Minus) else v
            return None
        if isinstance(node, cst.SimpleString):
            if set(node.prefix.lower()) & {"b", "f"}:
                return None
            s = ast.literal_eval(node.value)
            return s if isinstance(s, str) else None
    except (ValueError, SyntaxError):
        return None
    return None


def _leaf_of(node: cst.BaseExpression) -> cst.CSTNode:
    return node.expression if isinstance(node, cst.UnaryOperation) else node


def _parse_number(s: str) -> int | float | None:
    """A number written as text (``"0.01"``, ``"1e-3"``, ``"10_000"``), or None — never nan/inf."""
    s = s.strip()
    if not _NUMBER.fullmatch(s) or not any(c.isdigit() for c in s):
        return None
    try:
        if _INT_TEXT.fullmatch(s):
            return int(s.replace("_", ""))
        f = float(s.replace("_", ""))
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _callee(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None


def _computed_fields(node: cst.ClassDef) -> set[str]:
    """Fields of a config class that no one sets: declared `field(init=False)`, or assigned in `__post_init__`
    (`self.warmup_steps = int(0.1 * self.total_steps)`): their default is overwritten before it is read."""
    out: set[str] = set()
    for st in _suite(node.body):
        for small in (st.body if isinstance(st, cst.SimpleStatementLine) else ()):
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and \
                    isinstance(small.value, cst.Call) and _callee(small.value.func) == "field" and any(
                        a.keyword is not None and a.keyword.value == "init" and isinstance(a.value, cst.Name)
                        and a.value.value == "False" for a in small.value.args):
                out.add(small.target.value)
        if isinstance(st, cst.FunctionDef) and st.name.value == "__post_init__":
            for assign in _walk_assigns(st.body):
                for t in assign.targets:
                    if isinstance(t.target, cst.Attribute) and isinstance(t.target.value, cst.Name) and \
                            t.target.value.value == "self" and not _reads_attribute(assign.value, t.target.attr.value):
                        out.add(t.target.attr.value)  # not `self.betas = tuple(self.betas)`: the default is read
    return out


def _reads_attribute(node: cst.CSTNode, name: str) -> bool:
    found: list[bool] = []

    class _Visitor(cst.CSTVisitor):
        def visit_Attribute(self, n: cst.Attribute) -> None:
            if n.attr.value == name:
                found.append(True)

    node.visit(_Visitor())
    return bool(found)


def _walk_assigns(node: cst.CSTNode) -> list[cst.Assign]:
    found: list[cst.Assign] = []

    class _Visitor(cst.CSTVisitor):
        def visit_Assign(self, n: cst.Assign) -> None:
            found.append(n)

    node.visit(_Visitor())
    return found


def _suite(body: cst.BaseSuite) -> Sequence[cst.BaseStatement | cst.BaseSmallStatement]:
    if isinstance(body, cst.IndentedBlock):
        return body.body
    if isinstance(body, cst.SimpleStatementSuite):
        return body.body
    return ()


def _attr_path(node: cst.BaseExpression) -> str | None:
    """``config.model.hidden_size`` for an attribute chain rooted at a name, else None (``f().x``, ``a[0].x``)."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name) or not parts:
        return None
    return ".".join([node.value, *reversed(parts)])


def _target_names(node: cst.BaseExpression) -> Iterator[str]:
    if isinstance(node, cst.Name):
        yield node.value
    elif isinstance(node, cst.Attribute):
        path = _attr_path(node)
        if path is not None:
            yield path
    elif isinstance(node, cst.Tuple | cst.List):
        for el in node.elements:
            yield from _target_names(el.value)
    elif isinstance(node, cst.StarredElement):
        yield from _target_names(node.value)


@dataclass
class _Pending:
    """A knob found in the tree whose position is filled in when code generation reaches its literal."""

    name: str
    kind: str
    style: str
    value: Value
    leaf: cst.CSTNode
    node: cst.CSTNode  # the claimed expression: the leaf, or a signed number's UnaryOperation
    choices: tuple[Value, ...] = ()
    ordinal: int = -1  # the leaf's place among the module's literal tokens, in source order (-1: not reached)


@dataclass(frozen=True)
class _Found:
    knob: Knob
    start: int
    end: int


class _PyScanner(cst.CSTVisitor):
    """Walks a libcst module once, in source order: claims the literal nodes that are knobs, and numbers every
    literal token it passes (`_LITERAL_TOKENS`) so that a claimed one can be found among the tokenizer's.

    Handlers for Module / ClassDef / FunctionDef / Call / For run when the walk enters their node — before their
    children — and claim literal nodes below it; a claimed node's ordinal is recorded when the walk reaches it.
    The walk never descends into an f-string for its count (the tokenizer sees one string there, or a run of
    f-string tokens counted as one), but handlers still see the calls inside it; a literal they claim there has no
    ordinal and is placed by the exact fallback.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        super().__init__()
        self.texts = texts
        self.pending: list[_Pending] = []
        self.claimed: set[int] = set()
        self.leaves: dict[int, _Pending] = {}
        self.scope: list[tuple[str, str]] = []
        self.local_callables: set[str] = set()
        self.count = 0  # literal tokens passed so far
        self.in_fstring = 0  # depth of f-strings the walk is inside

    # ---- visitor hooks ----------------------------------------------------------------------------------------

    def on_visit(self, node: cst.CSTNode) -> bool:
        t = type(node)
        handler = _HANDLERS.get(t)
        if handler is not None:
            handler(self, node)
        if t in _TOKEN_LEAVES or (t is cst.Name and node.value in _NAME_LITERALS):  # type: ignore[attr-defined]
            if not self.in_fstring:
                p = self.leaves.get(id(node))
                if p is not None:
                    p.ordinal = self.count
                self.count += 1
        elif t is cst.FormattedString:
            if not self.in_fstring:
                self.count += 1  # one string token (or one f-string's run of tokens)
            self.in_fstring += 1
        # below a name, a literal, an operator, whitespace, an import or `name.attr` there is no literal token and
        # nothing to claim: not walking it spares libcst rebuilding its nodes, most of a walk's cost (bench/knobs.py)
        if t is cst.Attribute:  # `None.__class__` holds a literal token
            value = node.value  # type: ignore[attr-defined]
            return type(value) is not cst.Name or value.value in _NAME_LITERALS
        return t not in _NOTHING_BELOW

    def on_leave(self, original_node: cst.CSTNode) -> None:
        t = type(original_node)
        if t is cst.ClassDef or t is cst.FunctionDef:
            self.scope.pop()
        elif t is cst.FormattedString:
            self.in_fstring -= 1

    # ---- registration -----------------------------------------------------------------------------------------

    def _register(self, name: str, kind: str, style: str, value: Value, node: cst.BaseExpression,
                  choices: tuple[Value, ...] = ()) -> None:
        if id(node) in self.claimed:
            return
        self.claimed.add(id(node))
        p = _Pending(name, kind, style, value, _leaf_of(node), node, choices)
        self.pending.append(p)
        self.leaves[id(p.leaf)] = p

    def _scalar(self, full: str, key: str, value: Value, node: cst.BaseExpression, mode: str, style: str,
                callee: str | None = None) -> None:
        """Make a knob of one literal if its name says it is one; `mode` decides how strict to be."""
        if isinstance(value, str):
            group = _choice_group(full, value, callee)
            if group is None:
                return
            self._register(full, "choice", style, value, node, _choices(group, value, self.texts))
            return
        kind = classify_path([*full.split(".")[:-1], key])
        if kind == "split":
            return
        if isinstance(value, bool) and kind not in ("seed", "logging"):
            kind = "flag"
        if mode == "function" and kind not in _KNOWN:
            return
        self._register(full, kind, style, value, node)

    def _value(self, full: str, key: str, node: cst.BaseExpression, mode: str, style: str) -> None:
        """Knobs in the value of an assignment, dict entry or default: a literal, a dict, a list of sizes."""
        v = _py_literal(node)
        if v is not None:
            self._scalar(full, key, v, node, mode, style)
            return
        if isinstance(node, cst.Dict) or (isinstance(node, cst.Call) and _callee(node.func) in _DICT_LIKE):
            if mode == "module":
                if not (_CONFIG_VAR.search(key) or _has_known_key(node)):
                    return
                mode = "config"
            for k, val in _dict_items(node):
                self._value(f"{full}.{k}", k, val, mode, "dict" if style != "dataclass" else style)
            return
        if isinstance(node, cst.List | cst.Tuple):
            elem_kind = _ELEMENT_KIND.get(classify(key))
            if elem_kind is None:
                return
            for i, el in enumerate(node.elements):
                ev = _py_literal(el.value)
                if isinstance(ev, int | float) and not isinstance(ev, bool):
                    self._register(f"{full}[{i}]", elem_kind, style, ev, el.value)
            return
        if isinstance(node, cst.Call) and _callee(node.func) == "field" and mode == "config":
            for arg in node.args:
                if arg.keyword is not None and arg.keyword.value == "default":
                    self._value(full, key, arg.value, mode, style)

    # ---- scopes -----------------------------------------------------------------------------------------------

    def _walk(self, stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement], in_loop: bool,
              counts: Counter[str], smalls: list[tuple[cst.BaseSmallStatement, bool]]) -> None:
        """Statements of one scope (not nested defs/classes): count assignments per name, collect small statements
        with whether they sit in a loop. A name assigned twice or augmented is a variable, not a knob."""
        for st in stmts:
            if isinstance(st, cst.SimpleStatementLine):
                self._walk(st.body, in_loop, counts, smalls)
            elif isinstance(st, cst.BaseSmallStatement):
                smalls.append((st, in_loop))
                if isinstance(st, cst.Assign):
                    for t in st.targets:
                        counts.update(_target_names(t.target))
                elif isinstance(st, cst.AnnAssign) and st.value is not None:
                    counts.update(_target_names(st.target))
                elif isinstance(st, cst.AugAssign):
                    counts.update(_target_names(st.target))
                    counts.update(_target_names(st.target))
            elif isinstance(st, cst.FunctionDef | cst.ClassDef):
                continue
            elif isinstance(st, cst.If):
                self._walk(_suite(st.body), in_loop, counts, smalls)
                if st.orelse is not None:
                    self._walk([st.orelse] if isinstance(st.orelse, cst.If) else _suite(st.orelse.body), in_loop,
                               counts, smalls)
            elif isinstance(st, cst.For):
                counts.update(_target_names(st.target))
                self._walk(_suite(st.body), True, counts, smalls)
                if st.orelse is not None:
                    self._walk(_suite(st.orelse.body), True, counts, smalls)
            elif isinstance(st, cst.While):
                self._walk(_suite(st.body), True, counts, smalls)
            elif isinstance(st, cst.With):
                for item in st.items:
                    if item.asname is not None:
                        counts.update(_target_names(item.asname.name))
                self._walk(_suite(st.body), in_loop, counts, smalls)
            elif isinstance(st, cst.Try | cst.TryStar):
                self._walk(_suite(st.body), in_loop, counts, smalls)
                for h in st.handlers:
                    self._walk(_suite(h.body), in_loop, counts, smalls)
                if st.orelse is not None:
                    self._walk(_suite(st.orelse.body), in_loop, counts, smalls)
                if st.finalbody is not None:
                    self._walk(_suite(st.finalbody.body), in_loop, counts, smalls)
            elif isinstance(st, cst.Match):
                for case in st.cases:
                    self._walk(_suite(case.body), in_loop, counts, smalls)

    def _block(self, stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement], prefix: str, mode: str,
               style: str, computed: Collection[str] = ()) -> None:
        counts: Counter[str] = Counter()
        smalls: list[tuple[cst.BaseSmallStatement, bool]] = []
        self._walk(stmts, False, counts, smalls)
        roots = {t.target.value for small, _ in smalls if isinstance(small, cst.Assign)
                 for t in small.targets if isinstance(t.target, cst.Name) and isinstance(small.value, cst.Call)
                 and _callee(small.value.func) in _CONFIG_CTORS}
        for small, in_loop in smalls:
            if in_loop:
                continue
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target, value = small.targets[0].target, small.value
            elif isinstance(small, cst.AnnAssign) and small.value is not None:
                target, value = small.target, small.value
            else:
                continue
            if isinstance(target, cst.Attribute):
                # a field set on a config object: ml_collections' `config.learning_rate = 0.1` in get_config(),
                # detectron2's `cfg.SOLVER.BASE_LR = 0.00025`, `args.epochs = 20` after parsing (never `self.x`, a
                # module's attribute or anything set twice)
                path = _attr_path(target)
                root = path.split(".", 1)[0] if path is not None else ""
                if path is None or counts[path] != 1 or not (_CONFIG_VAR.search(root) or root in roots):
                    continue
                self._value(prefix + path, path.rsplit(".", 1)[1], value, mode, style)
                continue
            if not isinstance(target, cst.Name) or target.value.startswith("__") or counts[target.value] != 1 or \
                    target.value in computed:
                continue
            self._value(prefix + target.value, target.value, value, mode, style)

    def _qual(self) -> str:
        return ".".join(n for _, n in self.scope)

    def on_module(self, node: cst.Module) -> None:
        self.local_callables = set(_def_names(node.body))
        self._block(node.body, "", "module", "constant")

    def on_class(self, node: cst.ClassDef) -> None:
        self.scope.append(("class", node.name.value))
        if _is_config_class(node):
            self._block(_suite(node.body), self._qual() + ".", "config", "dataclass", _computed_fields(node))

    def on_def(self, node: cst.FunctionDef) -> None:
        parent_is_class = bool(self.scope) and self.scope[-1][0] == "class"
        outer = self._qual()
        fname = node.name.value
        self.scope.append(("def", fname))
        qual = self._qual()
        sig = f"{outer}." if fname == "__init__" and parent_is_class else f"{qual}."
        params = node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            if p.default is not None and p.name.value not in ("self", "cls"):
                default = p.default
                if isinstance(default, cst.Call) and _callee(default.func) in ("Option", "Argument") and \
                        default.args and default.args[0].keyword is None:
                    default = default.args[0].value  # typer's `lr: float = typer.Option(1e-3, help=...)`
                self._value(sig + p.name.value, p.name.value, default, "function", "signature")
        self._block(_suite(node.body), qual + ".", "function", "constant")

    def on_for(self, node: cst.For) -> None:
        if not isinstance(node.target, cst.Name):
            return
        low = node.target.value.lower()
        if "epoch" in low:
            name = "epochs"
        elif "step" in low or "iter" in low:
            name = "steps"
        else:
            return
        it = node.iter
        if isinstance(it, cst.Call) and _callee(it.func) not in ("range", "trange") and it.args:
            it = it.args[0].value  # tqdm(range(n))
        if not (isinstance(it, cst.Call) and _callee(it.func) in ("range", "trange")):
            return
        pos = [a.value for a in it.args if a.keyword is None and not a.star]
        if not pos or len(pos) > 3:
            return
        stop = pos[0] if len(pos) == 1 else pos[1]
        v = _py_literal(stop)
        if isinstance(v, int) and not isinstance(v, bool):
            self._register(name, name, "call", v, stop)

    def on_call(self, node: cst.Call) -> None:
        callee = _callee(node.func)
        if callee is None:
            return
        if callee in ("add_argument", "option"):
            self._argparse(node)
            return
        if callee in _ABSL_DEFINES:
            self._absl(node)
            return
        if callee in ("get", "getenv"):
            self._env(node, callee)
            return
        if callee == "getattr":
            self._getattr(node)
            return
        if callee in _SKIP_CALLS or callee in _DICT_LIKE or callee.startswith(("make_", "load_", "fetch_")):
            return
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        if callee in _DROPOUT_CALLS:
            self._positional(callee, "p", "dropout", pos[:1])
        elif callee in _DROPOUT_FUNCS:
            self._positional(callee, "p", "dropout", pos[1:2])
        elif callee in _OPTIMIZERS:
            lits = [p for p in pos[:2] if isinstance(_py_literal(p), float | int)]
            self._positional(callee, "lr", "lr", lits[:1])
        elif callee == "DataLoader":
            self._positional(callee, "batch_size", "batch_size", pos[1:2])
        elif callee in _FASTAI_FITS:  # `learn.fit_one_cycle(5, 1e-3)`: epochs, then the peak learning rate
            epochs, lr = _FASTAI_FITS[callee]
            self._positional(callee, epochs, "epochs", [p for p in pos[:1] if isinstance(_py_literal(p), int)])
            self._positional(callee, lr, "lr", [p for p in pos[1:2] if isinstance(_py_literal(p), float)])
        elif callee in _CLIP_FUNCS:
            self._positional(callee, _CLIP_FUNCS[callee], "clip", pos[1:2])
        for arg in node.args:
            if arg.keyword is not None:
                self._call_kw(callee, arg.keyword.value, arg.value)

    # ---- call styles ------------------------------------------------------------------------------------------

    def _positional(self, callee: str, param: str, kind: str, nodes: Sequence[cst.BaseExpression]) -> None:
        for n in nodes:
            v = _py_literal(n)
            if isinstance(v, int | float) and not isinstance(v, bool):
                self._register(f"{callee}.{param}", kind, "call", v, n)

    def _call_kw(self, callee: str, kw: str, node: cst.BaseExpression) -> None:
        """Inline keyword literals: only kinds that are safe to change in place (an optimizer's lr, a loader's
        batch size, an estimator's C), never shapes of library layers, seeds or split sizes."""
        local = callee in self.local_callables
        kind = "dropout" if callee in _DROPOUT_CALLS | _DROPOUT_FUNCS and kw in ("p", "rate") else classify(kw)
        if kind in ("seed", "split", "logging", "fixed"):
            return
        allowed = (kind in _CALL_KINDS or kw in _SAFE_CALL_KW
                   or (kind in ("width", "seq_len") and (local or kw in _SAFE_WIDTH_KW)))
        name = f"{callee}.{kw}"
        if isinstance(node, cst.List | cst.Tuple):
            elem_kind = _ELEMENT_KIND.get(kind)
            if elem_kind is None or not allowed:
                return
            for i, el in enumerate(node.elements):
                ev = _py_literal(el.value)
                if isinstance(ev, int | float) and not isinstance(ev, bool):
                    self._register(f"{name}[{i}]", elem_kind, "call", ev, el.value)
            return
        v = _py_literal(node)
        if v is None:
            return
        if isinstance(v, str):
            group = _choice_group(name, v, callee)
            if group is not None:
                self._register(name, "choice", "call", v, node, _choices(group, v, self.texts))
        elif isinstance(v, bool):
            if kw in _CALL_FLAG_KW or local:
                self._register(name, "flag", "call", v, node)
        elif allowed:
            self._register(name, kind, "call", v, node)

    def _argparse(self, node: cst.Call) -> None:
        """``add_argument("--lr", type=float, default=0.01)`` (and click's ``option``): the default is the knob,
        named by its long option string."""
        opts = [v for a in node.args if a.keyword is None and isinstance(v := _py_literal(a.value), str)]
        option = next((o for o in opts if o.startswith("--")), None) or next((o for o in opts if o.startswith("-")),
                                                                           None)
        if option is None:
            return
        kws = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        dnode = kws.get("default")
        if dnode is None:
            return
        v = _py_literal(dnode)
        if v is None:
            return
        typ = kws.get("type")
        type_name = typ.value if isinstance(typ, cst.Name) else None
        if isinstance(v, str) and (num := _parse_number(v) if type_name in ("float", "int") else None) is not None:
            v = float(num) if type_name == "float" and isinstance(num, int) else num
        self._option(option, option.lstrip("-"), v, dnode, _literal_choices(kws.get("choices")))

    def _option(self, option: str, key: str, v: Value, dnode: cst.BaseExpression, choices: tuple[Value, ...]) -> None:
        """An option's default as a knob named by the option: a string among its choices is a choice, another
        string a scalar setting; a number or a switch is classified by the option's name."""
        if isinstance(v, str):
            if choices:
                self._register(option, "choice", "argparse", v, dnode, choices)
            else:
                self._scalar(option, key, v, dnode, "module", "argparse")
            return
        kind = classify(key)
        if kind == "split":
            return
        if isinstance(v, bool) and kind not in ("seed", "logging"):
            kind = "flag"
        self._register(option, kind, "argparse", v, dnode, choices)

    def _absl(self, node: cst.Call) -> None:
        """absl's ``flags.DEFINE_float("learning_rate", 0.1, "help")``: the default (second argument, or
        ``default=``) is the knob, named like the option the command line sets (``--learning_rate``);
        ``DEFINE_enum``'s values (third argument, or ``enum_values=``) are its choices."""
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        kws = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        flag = _py_literal(pos[0]) if pos else _py_literal(kws["name"]) if "name" in kws else None
        dnode = pos[1] if len(pos) > 1 else kws.get("default")
        if not isinstance(flag, str) or not flag.isidentifier() or dnode is None:
            return
        v = _py_literal(dnode)
        if v is None:
            return
        cnode = pos[2] if len(pos) > 2 and _callee(node.func) == "DEFINE_enum" else kws.get("enum_values")
        self._option(f"--{flag}", flag, v, dnode, _literal_choices(cnode))

    def _getattr(self, node: cst.Call) -> None:
        """``args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)``: the fallback is the setting where
        the command leaves the option out (fairseq's architecture functions fill the model's settings this way,
        with options declared without a default). Named by the function and the attribute; only known tunable kinds."""
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        if len(pos) != 3:
            return
        attr, v = _py_literal(pos[1]), _py_literal(pos[2])
        if not isinstance(attr, str) or not attr.isidentifier() or not isinstance(v, int | float) \
                or isinstance(v, bool):
            return
        kind = classify(attr)
        if kind not in _TUNABLE_KNOWN:
            return
        qual = self._qual()
        self._register(f"{qual}.{attr}" if qual else attr, kind, "getattr", v, pos[2])

    def _env(self, node: cst.Call, callee: str) -> None:
        """``os.environ.get("LR", "0.01")`` / ``os.getenv("EPOCHS", 5)``: the fallback default is the knob."""
        func = node.func
        if callee == "get":
            recv = func.value if isinstance(func, cst.Attribute) else None
            if not ((isinstance(recv, cst.Attribute) and recv.attr.value == "environ")
                    or (isinstance(recv, cst.Name) and recv.value == "environ")):
                return
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        if len(pos) < 2:
            return
        var = _py_literal(pos[0])
        v = _py_literal(pos[1])
        if not isinstance(var, str) or v is None:
            return
        if isinstance(v, str):
            num = _parse_number(v)
            if num is None:
                self._scalar(f"${var}", var, v, pos[1], "module", "env")
                return
            v = num
        kind = classify(var)
        if kind == "split":
            return
        if isinstance(v, bool) and kind not in ("seed", "logging"):
            kind = "flag"
        self._register(f"${var}", kind, "env", v, pos[1])


_HANDLERS: dict[type, Any] = {
    cst.Module: _PyScanner.on_module,
    cst.ClassDef: _PyScanner.on_class,
    cst.FunctionDef: _PyScanner.on_def,
    cst.Call: _PyScanner.on_call,
    cst.For: _PyScanner.on_for,
}


def _dict_items(node: cst.BaseExpression) -> Iterator[tuple[str, cst.BaseExpression]]:
    """String-keyed entries of a dict literal or of ``dict(lr=...)`` / ``SimpleNamespace(...)``-like calls."""
    if isinstance(node, cst.Dict):
        for el in node.elements:
            if isinstance(el, cst.DictElement):
                k = _py_literal(el.key)
                if isinstance(k, str) and k:
                    yield k, el.value
    elif isinstance(node, cst.Call):
        for arg in node.args:
            if arg.keyword is not None:
                yield arg.keyword.value, arg.value
            elif not arg.star and isinstance(arg.value, cst.Dict):
                yield from _dict_items(arg.value)


def _has_known_key(node: cst.BaseExpression, depth: int = 0) -> bool:
    if depth > 4:
        return False
    for k, v in _dict_items(node):
        if classify(k) in _TUNABLE_KNOWN:
            return True
        if isinstance(v, cst.Dict | cst.Call) and _has_known_key(v, depth + 1):
            return True
    return False


def _def_names(stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement]) -> Iterator[str]:
    """Names of classes and functions defined anywhere in the file: calls to them may take width keywords."""
    for st in stmts:
        if isinstance(st, cst.FunctionDef | cst.ClassDef):
            yield st.name.value
            yield from _def_names(_suite(st.body))
        elif isinstance(st, cst.If | cst.With | cst.Try | cst.For | cst.While):
            yield from _def_names(_suite(st.body))


def _is_config_class(node: cst.ClassDef) -> bool:
    for d in node.decorators:
        expr = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
        if _callee(expr) in _DATACLASS_DECOS:
            return True
    if any(_callee(b.value) in _CONFIG_BASES for b in node.bases):
        return True
    return bool(_CONFIG_CLASS.search(node.name.value))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    i = find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


def _knob_at(path: str, text: str, starts: list[int], name: str, value: Value, kind: str, style: str,
             offset: int, choices: tuple[Value, ...]) -> Knob:
    line = bisect.bisect_right(starts, offset)
    end = starts[line] - 1 if line < len(starts) else len(text)
    context = text[starts[line - 1]:end].strip()
    return Knob(name, path, value, kind, style, line, context, choices)


# the tree's literal leaves that are one token each, and the names that are literals (keywords: never anything else)
_TOKEN_LEAVES = frozenset({cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString})
_NAME_LITERALS = frozenset({"True", "False", "None"})


def _nothing_below() -> frozenset[type]:
    """libcst's node types whose subtree holds no literal token and no node a handler claims from: names and
    literals (counted as they are reached), operators, brackets, commas, whitespace, imports and the statements
    that hold only names."""
    bases = (cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp)
    plain = {cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Ellipsis, cst.Comma, cst.Colon,
             cst.Dot, cst.AssignEqual, cst.Semicolon, cst.ImportStar, cst.LeftParen, cst.RightParen,
             cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace, cst.Newline,
             cst.Comment, cst.EmptyLine, cst.TrailingWhitespace, cst.ParenthesizedWhitespace, cst.SimpleWhitespace,
             cst.Import, cst.ImportFrom, cst.ImportAlias, cst.Global, cst.Nonlocal, cst.Pass, cst.Break,
             cst.Continue}
    ops = {c for c in vars(cst).values() if isinstance(c, type) and issubclass(c, bases) and c not in bases}
    return frozenset(plain | ops)


_NOTHING_BELOW = _nothing_below()


def _literal_tokens(body: str) -> list[tuple[int, int]] | None:
    """(row, column) where every literal token starts — numbers, strings, True/False/None, and each f-string as
    one — in source order; None when the tokenizer refuses the text."""
    out: list[tuple[int, int]] = []
    depth = 0
    names = _NAME_LITERALS
    try:
        for tok in tokenize.generate_tokens(io.StringIO(body).readline):
            typ = tok.type
            if depth:
                name = tokenize.tok_name.get(typ, "")
                if name.endswith("STRING_START"):
                    depth += 1
                elif name.endswith("STRING_END"):
                    depth -= 1
                continue
            if typ == tokenize.NUMBER or typ == tokenize.STRING or (typ == tokenize.NAME and tok.string in names):
                out.append(tok.start)
            elif tokenize.tok_name.get(typ, "").endswith("STRING_START"):  # Python 3.12+: f"..." is several tokens
                out.append(tok.start)
                depth = 1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return out


def _spans_by_token(body: str, scanner: _PyScanner) -> dict[int, tuple[int, int]] | None:
    """Where each claimed literal lies in `body` (character offsets, by the index of its `_Pending`), found as the
    n-th literal token; None when the tree and the tokenizer do not line up, or a literal was not reached."""
    if any(p.ordinal < 0 for p in scanner.pending):
        return None
    starts = _literal_tokens(body)
    if starts is None or len(starts) != scanner.count:
        return None
    lines = _line_starts(body)
    out: dict[int, tuple[int, int]] = {}
    for k, p in enumerate(scanner.pending):
        row, col = starts[p.ordinal]
        s = lines[row - 1] + col
        value: str = p.leaf.value  # type: ignore[attr-defined]
        e = s + len(value)
        if body[s:e] != value:
            return None
        if isinstance(p.node, cst.UnaryOperation):
            # the sign: the operator just before the literal, across spaces, line breaks and comments in brackets
            q = s - 1
            while q >= 0 and body[q] in " \t\f\r\n\\":
                q -= 1
            if q < 0 or body[q] not in "+-":
                return None
            s = q
        out[k] = (s, e)
    return out


def _spans_exact(module: cst.Module, body: str, scanner: _PyScanner) -> dict[int, tuple[int, int]]:
    """The same spans from libcst's `ByteSpanPositionProvider` (exact for every node, about twice the cost)."""
    spans = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ByteSpanPositionProvider)
    if body.isascii():
        def char(b: int) -> int:
            return b
    else:
        raw = body.encode("utf-8")

        def char(b: int) -> int:
            return len(raw[:b].decode("utf-8"))
    out: dict[int, tuple[int, int]] = {}
    for k, p in enumerate(scanner.pending):
        leaf, node = spans.get(p.leaf), spans.get(p.node)
        if leaf is None or node is None:
            continue
        start = spans[p.node.operator].start if isinstance(p.node, cst.UnaryOperation) else leaf.start
        out[k] = (char(start), char(leaf.start + leaf.length))
    return out


def _scan_python(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    # libcst drops a byte-order mark: positions in the parsed body are one character before the text's
    bom = 1 if text.startswith("\ufeff") else 0
    body = text[bom:]
    try:
        module = cst.parse_module(body)
    except (cst.ParserSyntaxError, ValueError, RecursionError):
        return []
    scanner = _PyScanner(texts)
    try:
        module.visit(scanner)
    except RecursionError:
        return []
    spans = _spans_by_token(body, scanner)
    if spans is None:
        spans = _spans_exact(module, body, scanner)
    starts = _line_starts(text)
    out = []
    for k, p in enumerate(scanner.pending):
        if k not in spans:
            continue
        s, e = (x + bom for x in spans[k])
        if not text[s:e].endswith(getattr(p.leaf, "value", "\0")):
            continue
        out.append(_Found(_knob_at(path, text, starts, p.name, p.value, p.kind, p.style, s, p.choices), s, e))
    return out


# --------------------------------------------------------------------------------------------------------------------
# YAML and JSON
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Leaf:
    """A scalar in a config file: its key path, exact character span and value."""

    path: tuple[str | int, ...]
    start: int
    end: int
    value: Value | None
    quoted: bool


def _yaml_leaves(text: str) -> list[_Leaf]:
    loader = yaml.SafeLoader("")
    out: list[_Leaf] = []
    seen: set[int] = set()

    def scalar(node: yaml.ScalarNode, path: tuple[str | int, ...]) -> None:
        s, e = node.start_mark.index, node.end_mark.index
        raw = text[s:e]
        if node.style is None:
            if raw != node.value:  # multi-line plain scalar: no single span to splice
                return
            try:
                v = loader.construct_object(node)
            except yaml.YAMLError:
                return
            if isinstance(v, str):
                num = _parse_number(v)
                v = num if num is not None and not v.isdigit() else v  # "1e-3" is a str to PyYAML, a float to us
            if isinstance(v, float) and not math.isfinite(v):
                return
            if isinstance(v, bool | int | float | str):
                out.append(_Leaf(path, s, e, v, False))
        elif node.style in ("'", '"') and len(raw) >= 2 and raw[0] == raw[-1] == node.style:
            out.append(_Leaf(path, s, e, node.value, True))

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if id(node) in seen:  # an alias: the anchor's span was already reported under its own path
            return
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if path:
                scalar(node, path)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    walk(v, (*path, str(k.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    for i, doc in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader)):
        if doc is not None:
            walk(doc, (f"doc{i}",) if i else ())
    return out


# TOML, read line by line for the spans (tomllib gives values, not positions) and checked against tomllib: a
# `[table]` header, then `key = value` lines whose value is a number, a boolean, a one-line string or a one-line
# array of numbers. What the line reader cannot place (multi-line strings and arrays, inline tables, arrays of
# tables) is left out, never guessed.
_TOML_TABLE = re.compile(r"^[ \t]*\[(?!\[)[ \t]*([^\]\n]+?)[ \t]*\][ \t]*(?:#.*)?$")
_TOML_ARRAY_TABLE = re.compile(r"^[ \t]*\[\[")
_TOML_KEY = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_TOML_PAIR = re.compile(rf"^[ \t]*({_TOML_KEY}(?:[ \t]*\.[ \t]*{_TOML_KEY})*)[ \t]*=[ \t]*")
_TOML_SCALAR = re.compile(r'[-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|true|false|"(?:[^"\\\n]|\\.)*"|'
                          r"'[^'\n]*'")
_TOML_END = re.compile(r"[ \t]*(?:#.*)?$")
_TOML_SKIP = frozenset({"pyproject.toml", "nightlab.toml", "cargo.toml", "poetry.toml", "uv.toml", "ruff.toml"})


def _toml_keys(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_TOML_KEY, dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _toml_leaves(text: str) -> list[_Leaf]:
    """The scalars of a TOML file with their spans (see `_TOML_TABLE`); raises ValueError when it is no TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(str(err)) from None

    def lookup(path: tuple[str | int, ...]) -> Any:
        node: Any = data
        for p in path:
            inside = (isinstance(p, int) and isinstance(node, list) and p < len(node)) or (
                isinstance(p, str) and isinstance(node, dict) and p in node)
            if not inside:
                return None
            node = node[p]
        return node

    def leaf(path: tuple[str | int, ...], s: int, e: int) -> _Leaf | None:
        raw = text[s:e]
        quoted = raw[:1] in "\"'"
        want = lookup(path)
        if isinstance(want, bool) or quoted:
            value: Value | None = want if isinstance(want, bool | str) else None
        else:
            value = want if isinstance(want, int | float) and math.isfinite(want) else None
        return _Leaf(path, s, e, value, quoted) if value is not None else None

    out: list[_Leaf] = []
    table: tuple[str, ...] | None = ()
    at = 0
    for line in text.splitlines(keepends=True):
        start, body = at, line.rstrip("\r\n")
        at += len(line)
        if _TOML_ARRAY_TABLE.match(body):
            table = None  # an array of tables: its entries have no single key path
            continue
        head = _TOML_TABLE.match(body)
        if head:
            table = _toml_keys(head.group(1))
            continue
        pair = _TOML_PAIR.match(body)
        if pair is None or table is None:
            continue
        path: tuple[str | int, ...] = (*table, *_toml_keys(pair.group(1)))
        rest = pair.end()
        scalar = _TOML_SCALAR.match(body, rest)
        if scalar and _TOML_END.match(body, scalar.end()):
            got = leaf(path, start + scalar.start(), start + scalar.end())
            if got is not None:
                out.append(got)
            continue
        if body[rest:rest + 1] == "[" and isinstance(lookup(path), list):  # a one-line array of numbers
            close = body.find("]", rest)
            if close < 0 or not _TOML_END.match(body, close + 1):
                continue
            for i, m in enumerate(re.finditer(r"[^,\s\[\]]+", body[rest + 1:close])):
                s = start + rest + 1 + m.start()
                got = leaf((*path, i), s, s + len(m.group()))
                if got is not None:
                    out.append(got)
    return out


def _scan_toml(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    if path.replace("\\", "/").rsplit("/", 1)[-1].lower() in _TOML_SKIP:
        return []  # a project's or a tool's own settings, not the training's
    try:
        leaves = _toml_leaves(text)
    except ValueError:
        return []
    return _config_found(path, text, leaves, "toml", texts)


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_JSON_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)


class _JsonScanner:
    """A position-aware JSON reader (comments and trailing commas tolerated, as in most JSON config files):
    records every scalar's span so a rewrite can splice it."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.out: list[_Leaf] = []

    def ws(self) -> None:
        m = _JSON_WS.match(self.s, self.i)
        if m:
            self.i = m.end()

    def expect(self, c: str) -> None:
        self.ws()
        if self.s[self.i:self.i + 1] != c:
            raise ValueError(f"expected {c!r} at {self.i}")
        self.i += 1

    def string(self) -> str:
        s, end = json.decoder.scanstring(self.s, self.i + 1)  # type: ignore[attr-defined]
        self.i = end
        return str(s)

    def value(self, path: tuple[str | int, ...], depth: int = 0) -> None:
        if depth > 200:
            raise ValueError("too deep")
        self.ws()
        c = self.s[self.i:self.i + 1]
        start = self.i
        if c == "{":
            self.i += 1
            self.ws()
            while self.s[self.i:self.i + 1] != "}":
                self.ws()
                if self.s[self.i:self.i + 1] != '"':
                    raise ValueError(f"expected key at {self.i}")
                key = self.string()
                self.expect(":")
                self.value((*path, key), depth + 1)
                self.ws()
                if self.s[self.i:self.i + 1] == ",":
                    self.i += 1
                    self.ws()
                elif self.s[self.i:self.i + 1] != "}":
                    raise ValueError(f"expected , or }} at {self.i}")
            self.i += 1
        elif c == "[":
            self.i += 1
            self.ws()
            n = 0
            while self.s[self.i:self.i + 1] != "]":
                self.value((*path, n), depth + 1)
                n += 1
                self.ws()
                if self.s[self.i:self.i + 1] == ",":
                    self.i += 1
                    self.ws()
                elif self.s[self.i:self.i + 1] != "]":
                    raise ValueError(f"expected , or ] at {self.i}")
            self.i += 1
        elif c == '"':
            v = self.string()
            self.out.append(_Leaf(path, start, self.i, v, True))
        else:
            m = _JSON_NUMBER.match(self.s, self.i)
            if m and m.end() > self.i:
                raw = m.group()
                self.i = m.end()
                num: int | float = int(raw) if _INT_TEXT.fullmatch(raw) else float(raw)
                self.out.append(_Leaf(path, start, self.i, num, False))
                return
            for lit, val in (("true", True), ("false", False), ("null", None)):
                if self.s.startswith(lit, self.i):
                    self.i += len(lit)
                    if val is not None:
                        self.out.append(_Leaf(path, start, self.i, val, False))
                    return
            raise ValueError(f"unexpected {c!r} at {self.i}")

    def run(self) -> list[_Leaf]:
        self.value(())
        self.ws()
        if self.i != len(self.s):
            raise ValueError("trailing data")
        return self.out


def _leaf_name(path: tuple[str | int, ...]) -> str:
    name = ""
    for p in path:
        if isinstance(p, int):
            name += f"[{p}]"
        else:
            name = f"{name}.{p}" if name else p
    return name


def _config_found(path: str, text: str, leaves: list[_Leaf], style: str, texts: Sequence[str]) -> list[_Found]:
    """Turn config scalars into knobs. A file none of whose keys names a known hyperparameter is taken for data
    (label maps, results, vocabularies) and yields nothing."""
    if len(leaves) > _MAX_CONFIG_SCALARS:
        return []
    starts = _line_starts(text)
    out: list[_Found] = []
    known = False
    for leaf in leaves:
        if leaf.value is None or not leaf.path:
            continue
        keys = [p for p in leaf.path if isinstance(p, str)]
        if not keys:
            continue
        name = _leaf_name(leaf.path)
        v = leaf.value
        element = isinstance(leaf.path[-1], int)
        if isinstance(v, str):
            group = None if element else _choice_group(name, v)
            if group is None:
                continue
            known = True
            kind, choices = "choice", _choices(group, v, texts)
        else:
            base = classify_path(keys)
            if base == "split" or _hydra_key(keys[-1]):
                continue  # a split changes what is measured; Hydra's `_partial_: true` flipped breaks instantiation
            if element:
                elem = _ELEMENT_KIND.get(base)
                if elem is None or isinstance(v, bool):
                    continue
                base = elem
            known = known or base in _TUNABLE_KNOWN
            kind = "flag" if isinstance(v, bool) and base not in ("seed", "logging") else base
            choices = ()
            if leaf.quoted:
                continue  # numbers in quotes are strings to the code that reads them
        out.append(_Found(_knob_at(path, text, starts, name, v, kind, style, leaf.start, choices),
                          leaf.start, leaf.end))
    return out if known else []


def _scan_yaml(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    try:
        leaves = _yaml_leaves(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return []
    return _config_found(path, text, leaves, "yaml", texts)


def _scan_gin(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    """gin-config bindings (`train.learning_rate = 3e-4`, `scope/make_model.hidden = 256`) and macros (`LR = 3e-4`)
    whose value is one literal on its line; references (`@fn`, `%MACRO`) and containers are left alone."""
    return _config_found(path, text, gin_bindings(text), "gin", texts)


def gin_bindings(text: str) -> list[_Leaf]:
    """The literal bindings of a .gin file as config leaves, keyed `fn.param` (a scope stays in the name:
    `train/make_model.hidden`)."""
    out: list[_Leaf] = []
    at = 0
    for line in text.splitlines(keepends=True):
        m = _GIN_BINDING.match(line)
        if m is not None:
            raw = m.group("value")
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = None
            if isinstance(value, bool | int | float | str):
                key = m.group("key")
                parts: tuple[str | int, ...] = tuple(key.rsplit(".", 1)) if "." in key else (key,)
                start = at + m.start("value")
                out.append(_Leaf(parts, start, start + len(raw), value, False))
        at += len(line)
    return out


_GIN_BINDING = re.compile(r"[ \t]*(?P<key>[A-Za-z_][\w./]*)[ \t]*=[ \t]*(?P<value>[^#\n]*?)[ \t]*(?:#.*)?$")


# INI-style configs: Python's configparser files (`config.read("config.ini")`, then `cfg.getfloat("optim", "lr")`)
# and spaCy / thinc's config.cfg (`[training.optimizer]` then `learn_rate = 0.001`, values written as JSON). A
# `[section]` header (dots in it nest: `training.optimizer`), then `key = value` or `key: value` lines; the value is
# a number, a boolean (`true`, `yes`, `on`), a JSON string or a plain word. Left out, never guessed: a value that
# continues on indented lines, an interpolation (`${paths.train}`, `%(base)s`), a list, `null`, and a registry
# reference (`@optimizers = "Adam.v1"`, which names a function, not a setting). The tools' own files (setup.cfg,
# tox.ini, ...) are no training's settings.
_INI_SECTION = re.compile(r"^\[[ \t]*([^\]\n]+?)[ \t]*\][ \t]*(?:[#;].*)?$")
_INI_PAIR = re.compile(r"^([^\s=:#;\[][^=:\n]*?)[ \t]*[=:][ \t]*")
_INI_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INI_TRUE = frozenset({"true", "yes", "on"})
_INI_FALSE = frozenset({"false", "no", "off"})
_INI_WORD = re.compile(r"[A-Za-z_][\w.\-]*")
_INI_SKIP = frozenset({"setup.cfg", "tox.ini", "pytest.ini", "mypy.ini", "alembic.ini", "flake8.cfg", ".flake8",
                       "pylintrc", ".pylintrc", "uwsgi.ini", "pip.ini", ".bumpversion.cfg", "bumpversion.cfg",
                       "versioneer.cfg", "nose.cfg", "pep8.ini", "pycodestyle.cfg", "tslint.ini", "supervisord.ini"})


def ini_settings(text: str) -> list[_Leaf]:
    """The scalars of an INI-style config (see `_INI_SECTION`) as config leaves keyed by section and key
    (`training.optimizer.learn_rate`), each with the span of its value."""
    out: list[_Leaf] = []
    section: tuple[str, ...] | None = None
    last: _Leaf | None = None
    at = 0
    for line in text.splitlines(keepends=True):
        start, body = at, line.rstrip("\r\n")
        at += len(line)
        if body[:1] in (" ", "\t") and body.strip() and not body.lstrip().startswith(("#", ";")):
            if last is not None and out and out[-1] is last:
                out.pop()  # the value goes on over indented lines: a multi-line value, not a scalar
            last = None
            continue
        last = None
        if not body.strip() or body.lstrip().startswith(("#", ";")):
            continue
        head = _INI_SECTION.match(body)
        if head:
            section = tuple(p.strip() for p in head.group(1).split("."))
            continue
        pair = _INI_PAIR.match(body)
        if pair is None or section is None:
            continue
        key = pair.group(1).strip()
        raw = body[pair.end():].rstrip()  # (configparser keeps a `; comment` after a value: no scalar then)
        if not raw or key.startswith("@") or "${" in raw or "%(" in raw:
            continue
        value: Value | None = None
        quoted = False
        low = raw.lower()
        if _INI_NUMBER.fullmatch(raw):
            number = float(raw)
            value = int(raw) if re.fullmatch(r"[-+]?\d+", raw) else number
            if isinstance(value, float) and not math.isfinite(value):
                value = None
        elif low in _INI_TRUE or low in _INI_FALSE:
            value = low in _INI_TRUE
        elif raw[:1] == '"' and raw[-1:] == '"' and len(raw) > 1:
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded = None
            value, quoted = (loaded, True) if isinstance(loaded, str) else (None, False)
        elif _INI_WORD.fullmatch(raw) and low != "null" and low != "none":
            value = raw
        if value is None:
            continue
        s = start + pair.end()
        last = _Leaf((*section, key), s, s + len(raw), value, quoted)
        out.append(last)
    return out


def _scan_ini(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    if path.replace("\\", "/").rsplit("/", 1)[-1].lower() in _INI_SKIP:
        return []
    return _config_found(path, text, ini_settings(text), "ini", texts)


def _scan_json(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    # JSON is read with our own scanner first: it follows JSON's rules exactly (``1e-3`` is a number, keys need no
    # space after the colon, tabs are whitespace) where PyYAML's YAML 1.1 rules differ. The composer is the fallback
    # for JSON-ish files the scanner rejects.
    try:
        leaves = _JsonScanner(text).run()
    except (ValueError, IndexError, RecursionError):
        try:
            leaves = _yaml_leaves(text)
        except (yaml.YAMLError, ValueError, RecursionError):
            return []
    return _config_found(path, text, leaves, "json", texts)


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def _scan(path: str, text: str, texts: Sequence[str] | None = None) -> tuple[_Found, ...]:
    """All knobs of one file with their spans, sorted by position, names made unique within the file.

    Cached: a policy discovers the same parent files again and again, and `rewrite` re-scans the text it was just
    handed, so the libcst parse (the dominant cost) is paid once per distinct file content.
    """
    if len(text) > _MAX_TEXT:
        return ()
    return _scan_cached(path, text, (text,) if texts is None else tuple(texts))


@functools.lru_cache(maxsize=128)
def _scan_cached(path: str, text: str, texts: tuple[str, ...]) -> tuple[_Found, ...]:
    low = path.lower()
    if low.endswith(".py"):
        found = _scan_python(path, text, texts)
    elif low.endswith((".yaml", ".yml")):
        found = _scan_yaml(path, text, texts)
    elif low.endswith(".json"):
        found = _scan_json(path, text, texts)
    elif low.endswith(".toml"):
        found = _scan_toml(path, text, texts)
    elif low.endswith(".gin"):
        found = _scan_gin(path, text, texts)
    elif low.endswith((".cfg", ".ini")):
        found = _scan_ini(path, text, texts)
    else:
        return ()
    found.sort(key=lambda f: f.start)
    seen: Counter[str] = Counter()
    out = []
    for f in found:
        seen[f.knob.name] += 1
        n = seen[f.knob.name]
        if n > 1:
            f = _Found(_renamed(f.knob, f"{f.knob.name}#{n}"), f.start, f.end)
        out.append(f)
    return tuple(out)


def _renamed(knob: Knob, name: str) -> Knob:
    return Knob(name, knob.path, knob.value, knob.kind, knob.style, knob.line, knob.context, knob.choices)


def discover(path: str, text: str) -> list[Knob]:
    """Knobs of one file, chosen by extension: ``.py`` through libcst, ``.yaml``/``.yml``/``.json`` through marks,
    ``.toml``, ``.gin`` and ``.cfg``/``.ini`` (configparser, spaCy) line by line; anything else (and anything that
    does not parse) yields []. Order is source order."""
    return [f.knob for f in _scan(path, text)]


def discover_files(files: dict[str, str]) -> list[Knob]:
    """Knobs of many files (path → text), ordered by path then position. Names that two files share are prefixed
    with ``path:`` so every name is unique in the repo; choice alternatives are checked against all files."""
    texts = list(files.values())
    knobs: list[Knob] = []
    for path in sorted(files):
        knobs.extend(f.knob for f in _scan(path, files[path], texts))
    owners: dict[str, set[str]] = {}
    for k in knobs:
        owners.setdefault(k.name, set()).add(k.path)
    return [_renamed(k, f"{k.path}:{k.name}") if len(owners[k.name]) > 1 else k for k in knobs]


def _real_valued(knob: Knob) -> bool:
    """Whether the knob is a real number by nature, whatever its current literal looks like."""
    if knob.kind in _FLOAT_KINDS:
        return True
    last = re.split(r"[.:$]", _local_name(knob).split("#")[0].split("[")[0])[-1].lstrip("-")
    return knob.kind == "other" and last.lower().replace("-", "_") in _FLOAT_NAMES


def _local_name(knob: Knob) -> str:
    prefix = f"{knob.path}:"
    return knob.name[len(prefix):] if knob.name.startswith(prefix) else knob.name


def span(text: str, knob: Knob) -> tuple[int, int]:
    """Character span of `knob`'s literal in `text` (found again by name). Raises KeyError if it is gone."""
    name = _local_name(knob)
    for f in _scan(knob.path, text):
        if f.knob.name == name:
            return f.start, f.end
    raise KeyError(knob.name)


def rewrite(text: str, knob: Knob, new_value: Value) -> str:
    """`text` with only `knob`'s literal replaced by `new_value`, written in the literal's own style.

    The knob is found again by name (so edits elsewhere in the file since discovery do not matter); KeyError if it
    no longer exists. Every byte outside the literal is kept, comments and spacing included.
    """
    start, end = span(text, knob)
    old = text[start:end]
    integer: bool | None = None
    if isinstance(new_value, float) and not new_value.is_integer() and _real_valued(knob):
        integer = False
    new = format_value(new_value, old, integer=integer)
    if knob.path.lower().endswith(".py"):
        try:
            cst.parse_expression(new)
        except cst.ParserSyntaxError as e:  # pragma: no cover - format_value only writes valid literals
            raise ValueError(f"cannot write {new_value!r} as a Python literal") from e
    return text[:start] + new + text[end:]


# --------------------------------------------------------------------------------------------------------------------
# Formatting values in the style of the literal they replace
# --------------------------------------------------------------------------------------------------------------------

_BOOL_PAIRS = (("True", "False"), ("true", "false"), ("TRUE", "FALSE"), ("yes", "no"), ("Yes", "No"), ("YES", "NO"),
               ("on", "off"), ("On", "Off"), ("ON", "OFF"))
_PY_STRING = re.compile(r"(?s)([rRuU]*)('''|\"\"\"|'|\")(.*)\2")
_E_STYLE = re.compile(r"([0-9._]*)([eE])([+-]?)([0-9_]+)")
_PLAIN_YAML = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def format_value(new_value: Value, old_literal: str, *, integer: bool | None = None) -> str:
    """`new_value` written the way `old_literal` was: ``1e-3`` stays in e-notation, ``0.001`` in decimal, ints as
    ints (with ``_`` grouping if the old one had it), booleans in the old spelling (True / true / yes), strings in
    the old quotes. `integer` overrides whether the result is an int (default: whatever the old literal was).

    Floats are written with their shortest exact repr, so the value read back is exactly `new_value`; rounding for
    readability is the caller's choice (see `Space.snap`). Raises ValueError for nan/inf and TypeError for a value
    that cannot replace this literal (a number for a plain word).
    """
    old = re.sub(r"^([+-])\s+", r"\1", old_literal.strip())  # "- 2e-3" (a CST unary with a space) → "-2e-3"
    if isinstance(new_value, float) and not math.isfinite(new_value):
        raise ValueError(f"refusing to write non-finite value {new_value!r}")
    m = _PY_STRING.fullmatch(old)
    if m:
        prefix, quote, inner = m.groups()
        if isinstance(new_value, str):
            return _format_str(new_value, prefix, quote)
        return f"{prefix}{quote}{format_value(new_value, inner, integer=integer)}{quote}"
    if isinstance(new_value, bool):
        for t, f in _BOOL_PAIRS:
            if old in (t, f):
                return t if new_value else f
        if _parse_number(old) is not None:
            return str(int(new_value))
        return "True" if new_value else "False"
    is_number = _parse_number(old) is not None or old.lstrip("+-").lower().startswith(("0x", "0o", "0b"))
    if isinstance(new_value, str):
        if is_number or any(old in pair for pair in _BOOL_PAIRS):
            raise TypeError(f"cannot write string {new_value!r} over {old!r}")
        if _PLAIN_YAML.fullmatch(new_value) and yaml.safe_load(new_value) == new_value:
            return new_value
        return json.dumps(new_value)
    if not is_number:
        raise TypeError(f"cannot write {new_value!r} over {old!r}")
    body = old.lstrip("+-").strip()
    old_is_int = bool(_INT_TEXT.fullmatch(body)) or body.lower().startswith(("0x", "0o", "0b"))
    as_int = old_is_int if integer is None else integer
    if as_int:
        v = round(new_value)
        if body.lower().startswith("0x"):
            digits = f"{abs(v):x}"
            return f"{'-' if v < 0 else ''}{body[:2]}{digits}"
        return f"{v:_}" if "_" in body else str(v)
    x = float(new_value)
    sign = "-" if x < 0 or (x == 0 and math.copysign(1.0, x) < 0 and old.startswith("-")) else ""
    x = abs(x)
    if old_is_int:  # an int literal that must become a float: pick the clearer notation
        text = repr(x)
        if "e" in text:
            return sign + _format_e(x, "1e-5")
        return sign + text
    if _E_STYLE.fullmatch(body):
        return sign + _format_e(x, body)
    return sign + _format_decimal(x, body)


def _format_str(value: str, prefix: str, quote: str) -> str:
    q = quote[0]
    if q not in value and "\\" not in value and "\n" not in value and "\r" not in value:
        return f"{prefix}{quote}{value}{quote}"
    return json.dumps(value)  # a double-quoted literal valid in Python, YAML and JSON alike


def _digits(x: float) -> tuple[str, int]:
    """Significant digits of |x| (shortest exact repr) and the decimal exponent of the first digit."""
    d = Decimal(repr(x)).normalize()
    t = d.as_tuple()
    digits = "".join(map(str, t.digits)) or "0"
    exp = int(t.exponent) + len(digits) - 1
    return digits, exp


def _format_e(x: float, old_body: str) -> str:
    m = _E_STYLE.fullmatch(old_body)
    mant_old, e_char, sign_old, exp_old = m.groups() if m else ("1", "e", "", "1")
    if x == 0:
        return "0.0"
    digits, exp = _digits(x)
    mant = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    if "." in mant_old and "." not in mant:
        mant += ".0"
    exp_old = exp_old.replace("_", "")
    width = len(exp_old) if exp_old.startswith("0") else 1
    exp_sign = "-" if exp < 0 else ("+" if sign_old == "+" else "")
    return f"{mant}{e_char}{exp_sign}{abs(exp):0{width}d}"


def _format_decimal(x: float, old_body: str) -> str:
    s = format(Decimal(repr(x)), "f")
    if "." not in s:
        s += ".0"
    if old_body.endswith(".") and s.endswith(".0"):
        s = s[:-1]
    if old_body.startswith(".") and s.startswith("0."):
        s = s[1:]
    return s


# --------------------------------------------------------------------------------------------------------------------
# Search spaces
# --------------------------------------------------------------------------------------------------------------------


def _is_pow2(v: float) -> bool:
    return v >= 1 and float(v).is_integer() and (int(v) & (int(v) - 1)) == 0


def search_space(knob: Knob) -> Space | None:
    """A sensible range for model-based search over `knob`, always containing its current value; None where no
    search makes sense (seeds, logging cadence, data shapes, a choice without alternatives, an unknown zero)."""
    v = knob.value
    kind = knob.kind
    if kind in UNTUNABLE_KINDS:
        return None
    if isinstance(v, str) or kind == "choice":
        choices = list(knob.choices) if knob.choices else []
        return Space(0.0, 0.0, False, False, choices) if len(choices) > 1 else None
    if isinstance(v, bool) or kind == "flag":
        return Space(0.0, 1.0, False, False, [False, True])
    if knob.choices and len(knob.choices) > 1:
        return Space(0.0, 0.0, False, False, list(knob.choices))
    x = float(v)
    is_int = isinstance(v, int) and not _real_valued(knob)
    if x == 0 and not is_int and kind == "other" and set(_tokens(_leaf_name_of(knob.name))) & _OFF_REGULARISERS:
        return Space(0.01, 0.3, True, False, allow_zero=True)  # off: switched on at a typical 0.05
    if x == 0 and not is_int and kind == "other" and \
            _leaf_name_of(knob.name).lstrip("-").replace("-", "_").lower() in _OFF_PENALTIES:
        return Space(1e-3, 10.0, True, False, allow_zero=True)  # a boosting penalty off by default: on at 1e-3..10
    if kind == "lr":
        if x <= 0:  # a schedule's floor at zero (`eta_min=0`, `min_lr: 0`): no rate is trained at it, nothing to raise
            return None
        return Space(min(max(x / 30, 1e-5), x), max(min(x * 30, 1.0), x), True, False)
    if kind == "batch_size":
        return Space(min(8.0, x) if x >= 1 else 8.0, max(512.0, x), True, True, pow2=True)
    if kind in ("width", "seq_len"):
        if x < 1:
            return None
        return Space(max(1.0, math.floor(x / 4)), x * 4, True, True, pow2=_is_pow2(x))
    if kind == "depth":
        if x < 1:
            return None
        return Space(1.0, float(max(4, int(x) + 2)), False, True)
    if kind in ("epochs", "steps"):
        if x < 1:
            return None
        return Space(max(1.0, math.floor(x / 2)), x * 4, True, True)
    if kind == "dropout":
        return Space(0.0, max(0.5, x), False, False) if x >= 0 else None
    if kind == "weight_decay":
        if x < 0:
            return None
        return Space(min(1e-6, x) if x > 0 else 1e-6, max(0.3, x), True, False, allow_zero=True)
    if kind == "momentum":
        if not 0 <= x < 1:
            return None
        if x >= 0.5:  # an average already on (SGD's 0.9, Adam's 0.99): moved by its horizon 1/(1 − x)
            return Space(0.0, max(0.999, x), False, False, log1m=True)
        if 0 < x < 0.05:  # no average this small: a diffusion schedule's `beta_start` 1e-4, a KL weight `beta`
            return Space(x / 10, min(x * 10, 0.5), True, False)  # (a step of 0.2 on the plain scale wrecked it)
        return Space(0.0, max(0.99, x), False, False)  # off or weak: switching it on is a step on the plain scale
    if kind == "warmup":
        if x < 0:
            return None
        words = set(_tokens(_leaf_name_of(knob.name)))
        if words & {"epoch", "epochs"}:  # a count of epochs, whole or not (`warmup_epochs = 0.5`): not a fraction
            return Space(0.0, max(4 * x, 10.0), False, is_int, allow_zero=True)
        if is_int or words & _STEPS:  # a count of steps
            return Space(0.0, float(max(4 * x, 100)), False, is_int, allow_zero=True)
        return Space(0.0, max(0.3, x), False, False, allow_zero=True) if x <= 1 else None  # a fraction of training
    if kind == "clip":
        if x <= 0:
            return Space(0.1, 10.0, True, False, allow_zero=True)
        return Space(x / 10, x * 10, True, False, allow_zero=True)
    if is_int:
        if x < 1:
            return None
        # a tree node needs two samples to split at all: scikit-learn refuses `min_samples_split=1`
        floor = 2 if tree_split(_leaf_name_of(knob.name)) and x >= 2 else 1
        return Space(float(max(floor, int(x) // 4)), x * 4, True, True)
    if x <= 0:
        return None
    bounded = _bounded_space(knob.name, x)
    if bounded is not None:
        return bounded
    return Space(x / 10, x * 10, True, False)


# regularisers that are off at 0 and on at a small real (label smoothing 0.1, mixup's α 0.2, random erasing's
# probability 0.25 in torchvision's references `--random-erase`): a zero has a space
_ERASING = frozenset({"erase", "erasing", "cutout"})  # a probability: bounded by 1 when on (`_bounded_space`)
_OFF_REGULARISERS = frozenset({"smoothing", "mixup", "cutmix"}) | _ERASING
# gradient boosting's penalties, off at their default 0 (LightGBM's `reg_alpha` / `reg_lambda` / `lambda_l1`,
# XGBoost's `reg_alpha` and `gamma` under its own name `min_split_loss`): Optuna's LightGBM tuner searches them on a
# log scale to 10; `lambda_l2` / `l2_leaf_reg` are weight decays (`classify`)
_OFF_PENALTIES = frozenset({"reg_alpha", "reg_lambda", "lambda_l1", "l1_reg", "l1_regularization", "min_split_loss",
                            "min_gain_to_split"})
# A real value in (0, 1] named as a share of something (a subsample, a fraction, a probability) means nothing above
# 1, and libraries refuse it: scikit-learn's and XGBoost's `subsample` and `colsample_bytree`, LightGBM's
# `bagging_fraction`. Searched ×10 around it like any unnamed real, `subsample = 0.8` was stepped to 2.4 and crashed
# the run. A share of the whole may be all of it (`subsample = 1.0` is the default); a probability or ratio of 1 is
# degenerate (every sample augmented, every token masked, every label smoothed away), so it stops at 0.95.
_SHARE_WHOLE = frozenset({"subsample", "colsample", "frac", "fraction", "keep", "bagging", "share", "portion",
                          "proportion", "pct", "percent"})
_SHARE_PART = frozenset({"p", "prob", "probability", "ratio", "smoothing"})
# A factor in [0.5, 1) named as a decay or a discount (an exponential learning-rate decay of 0.95 per epoch, a
# reinforcement-learning discount γ of 0.99, ReduceLROnPlateau's `factor`) is an average's coefficient, as a
# momentum is: what it sets is the horizon 1/(1 − x). It is searched on log(1 − x) between 0.5 and 1; ×10 around
# it, a discount of 0.99 was stepped to 2.97, a return that grows without bound, and a decay of 0.95 to 2.85, a
# learning rate that explodes.
_DECAY_FACTOR = frozenset({"decay", "discount", "gamma", "factor"})


def _bounded_space(name: str, x: float) -> Space | None:
    """The space of an unclassified real knob whose name bounds it (a share of 1, a decay factor below 1), or None
    for the generic ×10 around its value."""
    words = set(_tokens(_leaf_name_of(name)))
    if words & _CLIP and words & _POLICY_CLIP and 0 < x < 1:  # PPO's ratio clip: 0.1-0.3 works, 1 or more is no clip
        return Space(max(0.01, x / 4), max(0.5, x), False, False)
    if words & _MOMENTUM and words & _NORM_WORDS and 0 < x < 1:
        if x >= 0.5:  # Keras' convention (0.99): the average's horizon
            return Space(0.5, max(0.999, x), False, False, log1m=True)
        return Space(x / 10, 0.5, True, False)  # torch's (0.1): 0 would freeze the running statistics
    if words & {"gae", "lam"} and 0 < x <= 1:  # GAE's λ: 0.9-1 works; above 1 the advantages grow without bound
        return Space(min(0.8, x), 1.0, False, False)
    if words & {"eps", "epsilon", "exploration"} and words & {"start", "end", "final", "initial", "init", "min",
                                                               "max"} and 0 < x <= 1:  # an ε-greedy rate: a probability
        return Space(x / 10, 1.0, True, False) if x < 0.1 else Space(x / 4, 1.0, False, False)
    # bagging's share, a probability (random erasing's)
    if 0 < x <= 1 and (words & (_SHARE_WHOLE | _SHARE_PART | _ERASING) or {"max", "samples"} <= words):
        high = 1.0 if words & _SHARE_WHOLE or "samples" in words else max(0.95, x)
        return Space(x / 4, high, False, False)
    if 0 < x < 1 and words & _DECAY_FACTOR:
        if x >= 0.5:
            return Space(0.5, max(0.999, x), False, False, log1m=True)  # a factor near 0 stops the decayed thing
        # a step decay's factor (StepLR's gamma 0.1, ReduceLROnPlateau's factor, which refuses 1 or more): ×10
        # around it, below 1
        return Space(x / 10, min(x * 10, 0.9), True, False)
    return None


def _leaf_name_of(name: str) -> str:
    """The last part of a knob's dotted name (``GradientBoostingClassifier.subsample`` → ``subsample``), without a
    file prefix or a duplicate's ``#2``."""
    return re.split(r"[.:]", name.split("#")[0])[-1]
