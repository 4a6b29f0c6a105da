"""Which code measures the model rather than trains it: the part a policy must never edit or tune.

Changing how the metric is computed (the evaluation batch, the split, a clipping epsilon in the score) would move
the number without making the model any better, so the builtin policy leaves that code alone. It is found from
what the code does, never from how it is laid out or commented:

* functions that compute the printed metric: the statements that print (or log, or write) the metric's name, the
  names they print, and the statements that assign or accumulate those names (two steps back), lead to the
  project's own functions called there (``val_loss = evaluate(model, loader)``, ``losses = estimate_loss()``,
  ``scores.append(logloss_terms(logits, y))``). Where the metric names one entry of a logged dict or a checkpoint
  (``{"val/loss": losses["val"], "lr": lr}``) only that entry is followed, and a method called on the model
  (``model.accuracy(xv, yv)``) is followed, not the factory that built the model (`_heads`);
* functions whose name says they evaluate, test, score or load / split the data (``evaluate``, ``test_accuracy``,
  ``load_data``);

and in both cases only a function that does not train: one that calls ``.backward()``, an optimizer's
``.step()`` / ``.zero_grad()`` or ``.fit()``, takes gradients (``jax.value_and_grad``) or trains a booster
(``xgb.train(params, dtrain)``) is training code whatever its name, and so is one named for training as well
(``train_and_evaluate``) that trains through the functions it calls.
A model-building or data-batching function reached on the way (``get_batch`` used by both) is not an evaluation
function: only the head call of each expression counts, not the arguments it is given.

What an edit may not change of all this is decided in `edit_guard.py`, which compares a file before and after
against what is found here.

The rooms: `functions` (the functions that measure, and `fixed_lines`), `statements` (what measures outside them),
`printed` (where the metric is printed, and with which values), `names` (what a name says), `syntax` (the
syntax-tree helpers the readers of training code share).
"""

from __future__ import annotations

from nightlab.agent.policy.evaluation.functions import (
    CV_FUNCTIONS,
    CV_SEARCHES,
    FITTING_CALLS,
    SPLIT_CALLS,
    a_library_metric,
    builds_held_out,
    evaluation_functions,
    fixed_lines,
    measuring_helpers,
    metric_functions,
    project_functions,
    reaching_training,
    trains,
)
from nightlab.agent.policy.evaluation.names import (
    held_out_data,
    held_out_name,
    name_is_fixed,
    name_words,
    names_the_data,
    names_the_measurement,
    says_evaluation,
)
from nightlab.agent.policy.evaluation.statements import (
    TRAINING_PART,
    TRANSFORM_KEYWORDS,
    measuring_statements,
    sets_a_literal,
)
from nightlab.agent.policy.evaluation.syntax import (
    called_name,
    feeding,
    function_defs,
    parse_python,
    scope_statements,
    target_names,
)

__all__ = [
    "CV_FUNCTIONS",
    "CV_SEARCHES",
    "FITTING_CALLS",
    "SPLIT_CALLS",
    "TRAINING_PART",
    "TRANSFORM_KEYWORDS",
    "a_library_metric",
    "builds_held_out",
    "called_name",
    "evaluation_functions",
    "feeding",
    "fixed_lines",
    "function_defs",
    "held_out_data",
    "held_out_name",
    "measuring_helpers",
    "measuring_statements",
    "metric_functions",
    "name_is_fixed",
    "name_words",
    "names_the_data",
    "names_the_measurement",
    "parse_python",
    "project_functions",
    "reaching_training",
    "says_evaluation",
    "scope_statements",
    "sets_a_literal",
    "target_names",
    "trains",
]


