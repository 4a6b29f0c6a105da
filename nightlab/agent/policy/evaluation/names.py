"""What a name says about the code it names: a function named for evaluating, testing or loading data, a variable
holding a held-out part (`X_test`, `val_loader`), a setting of the measurement (`val_fraction`, `scoring`) or of
the data (`dataset_name`). Read as words, whatever the file or its comments."""


from __future__ import annotations

import ast
import re

_FIXED_NAME_TOKENS = frozenset({
    "eval", "evaluate", "evaluation", "test", "testing", "score", "scoring", "metric", "metrics",
    "validate", "validation", "val", "valid", "data", "dataset", "split", "loaddata",
})

# words beside a data word that make it training-side work on the data (augmentation, mixing, parallelism), and
# beside `split` a model operation (`split_heads`, `split_qkv`): never fixed by name
_TRAINING_SIDE_TOKENS = frozenset({"augment", "augmentation", "augmentations", "aug", "mixup", "cutmix", "mix",
                                   "parallel", "jitter", "noise"})

_MODEL_SPLIT_TOKENS = frozenset({"head", "heads", "qkv", "kv", "attn", "attention", "channel", "channels", "dim",
                                 "dims", "tokens", "states"})

_DATA_NAME_TOKENS = frozenset({"data", "dataset", "split", "loaddata"})

# beside these, `val` / `valid` is a value or a validity, not validation (`valid_mask`, `max_val`, `clip_val`,
# mmpretrain's `label_smooth_val`)
_NOT_VALIDATION = frozenset({"mask", "max", "min", "clip", "pos", "positions", "idx", "ids", "range", "value",
                             "values", "tokens", "len", "lengths", "smooth", "smoothing"})


def _tokens(name: str) -> set[str]:
    low = {t.lower() for t in re.split(r"_+|(?<=[a-z])(?=[A-Z])", name) if t}
    if low & _NOT_VALIDATION and not low & _VALIDATION_AMOUNTS:
        low -= {"val", "valid"}
    return low


# beside these, `val` is validation again, whatever else is there (`max_val_batches`, `min_val_samples`)
_VALIDATION_AMOUNTS = frozenset({"batches", "steps", "samples", "examples", "iters", "iterations", "episodes",
                                 "fraction", "frac", "ratio", "split", "percent", "pct", "check"})


def name_is_fixed(name: str) -> bool:
    """Whether a function's own name says it evaluates, tests, scores or loads / splits data (`augment_data`,
    `mixup_data` and `split_heads` say otherwise)."""
    low = _tokens(name)
    said = low & _FIXED_NAME_TOKENS
    if said and said <= _DATA_NAME_TOKENS and (low & _TRAINING_SIDE_TOKENS or (
            said == {"split"} and low & _MODEL_SPLIT_TOKENS)):
        return False
    return bool(said) or "load_data" in name.lower()


def says_evaluation(name: str) -> bool:
    """A name with an evaluation word (`validation_step`, `test_step`, `evaluate`), not only a data or score word."""
    return bool(_tokens(name) & (_FIXED_NAME_TOKENS - _DATA_NAME_TOKENS - {"score", "scoring"}))


def held_out_name(name: str) -> bool:
    """Whether a variable's name says it holds a held-out part (`val_idx`, `X_test`, `dev_data`, `valid2`)."""
    return bool(_HELD_OUT_WORDS & {w.lower() for w in re.split(r"_+|\d+", name) if w})


# words of a name that holds a number the measurement produced, not held-out data (`val_loss`, `best_val_acc`)
_RESULT_WORDS = frozenset({"loss", "losses", "acc", "accuracy", "score", "scores", "metric", "metrics", "f1", "auc",
                           "err", "error", "errors", "ppl", "perplexity", "bpc", "rmse", "mae", "mse", "r2", "best",
                           "pred", "preds", "prediction", "predictions", "logits", "probs", "history", "result",
                           "results", "log", "logs", "step", "steps", "every", "interval", "freq", "iters", "size",
                           "batch", "fraction", "frac", "ratio", "split", "pct"})

# `xv`, `y_te`, `Xtest`, and the pool a held-out sample is drawn from (`xv_all`)
_SHORT_HELD_OUT = re.compile(r"[xy]_?(v|va|val|te|tst|test)(?:_?(?:all|full|raw|pool))?\d*", re.IGNORECASE)


def held_out_data(name: str) -> bool:
    """A name that holds held-out examples (`X_te`, `val_loader`, `test_ds`, `xv`), not a number measured on them."""
    return bool(_SHORT_HELD_OUT.fullmatch(name)) or (held_out_name(name) and not name_words(name) & _RESULT_WORDS)


def name_words(name: str) -> set[str]:
    """The lower-case words of a variable's name, split at underscores and digits, with the part a short name
    abbreviates (`xv` → `v`, `Xtest` → `test`)."""
    words = {w.lower() for w in re.split(r"_+|\d+", name) if w}
    short = _SHORT_HELD_OUT.fullmatch(name)
    return words | ({short.group(1).lower()} if short else set())


# words of a setting's name that say it decides what is measured or how much of it (`limit_val_batches`,
# `validation_split`, `max_eval_samples`, `compute_metrics`, `test_size`, `eval_iters`), wherever it is written
_MEASURING_SETTING_WORDS = frozenset({"val", "valid", "validation", "eval", "evaluate", "evaluation", "test",
                                      "holdout", "metric", "metrics", "scoring", "evals",
                                      # cross-validation's folds (`cross_val_score(cv=CV)`, `CV = 5`, `n_folds`)
                                      "cv", "fold", "folds", "nfolds", "kfold", "kfolds"})

# sections (or keys) whose every setting is part of the measurement: spaCy's weights of the scores it combines into
# the one it selects the best model by and reports
_MEASURING_SECTIONS = frozenset({"score_weights"})


def names_the_measurement(name: str | None) -> bool:
    """Whether a setting's name (a keyword, a constant, a config key, a flag; dotted or dashed) says it decides the
    measurement: an evaluation or metric word (`clip_val`, `max_val` say otherwise), except an evaluation batch size
    (`per_device_eval_batch_size`, `eval.batch_size`), which changes only the speed; or a data split of its own
    (`prepare.split`, `split_seed`, `n_splits`; not a tree's `min_samples_split`)."""
    if not name:
        return False
    parts = [p for p in re.split(r"[.:/\\]+", name.strip("-").replace("-", "_")) if p]
    if not parts:
        return False
    words = set().union(*(_tokens(p) for p in parts))
    leaf = _tokens(parts[-1])
    if any(p.lower() in _MEASURING_SECTIONS for p in parts):
        return True  # spaCy's `[training.score_weights] cats_score = 1.0`: the score that picks and reports the best
    if leaf & {"split", "splits"} and not leaf & _NOT_A_DATA_SPLIT:
        return True  # `prepare.split: 0.20`, `split_seed`, `n_splits`: how much is held out, or which rows
    hits = words & _MEASURING_SETTING_WORDS
    if leaf & _ENSEMBLE_WORDS:  # AutoGluon's `num_bag_folds`, `num_stack_levels`: folds that train a bagged ensemble
        hits -= {"fold", "folds", "nfolds", "kfold", "kfolds"}
    return bool(hits) and not ({"batch", "size"} <= leaf or "bs" in leaf)


_ENSEMBLE_WORDS = frozenset({"bag", "bags", "bagging", "bagged", "stack", "stacking"})

# beside `split`, words of a tree's node splitting (`min_samples_split`, `min_split`, `max_splits`) or of a tensor
# split in a model (`split_size`, `split_heads`): no data split
_NOT_A_DATA_SPLIT = frozenset({"min", "max", "samples", "leaf", "node", "nodes", "gain", "size", "sections"}) | \
    _MODEL_SPLIT_TOKENS

_DATA_PLACE_WORDS = frozenset({"dir", "path", "root", "file", "name", "set", "id"})


def names_the_data(name: str | None) -> bool:
    """Whether a setting's name says which data the run uses (`dataset`, `dataset_name`, `data_dir`, `data.path`):
    given a string, it picks the held-out part with the training part (nanoGPT's `dataset = 'shakespeare_char'`
    reads data/<dataset>/val.bin), so another value is another task, not a better model."""
    parts = [p for p in re.split(r"[.:/\\]+", (name or "").strip("-").replace("-", "_")) if p]
    words: set[str] = set().union(*(_tokens(p) for p in parts)) if parts else set()
    return "dataset" in words or "datasets" in words or (
        "data" in words and (len(words) == 1 or bool(words & _DATA_PLACE_WORDS)))


_HELD_OUT_WORDS = frozenset({"val", "valid", "validation", "test", "te", "dev", "eval", "holdout", "va"})


def _is_model_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and bool(_tokens(node.id) & {"model", "net", "module", "network", "clf",
                                                                     "estimator", "classifier", "regressor"})
