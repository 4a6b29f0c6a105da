"""The metric contract: every print form, last-wins, curves with steps, NaN/inf/missing as failure, whole words."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from nightlab.agent.metrics import (
    MAX_CURVE_POINTS,
    find_candidates,
    guess_goal,
    parse_loss_curve,
    parse_metric,
    parse_metrics_file,
    parse_named_curve,
    propose_regex,
)

# --- every form the contract names ------------------------------------------------------------------------------

FORMS = [
    # (log, name, expected value)
    ("test_accuracy=0.5562\n", "test_accuracy", 0.5562),
    ("cv_r2: 0.1234\n", "cv_r2", 0.1234),
    ("acc = 0.91\n", "acc", 0.91),
    ("acc : 0.91\n", "acc", 0.91),
    ('{"cv_logloss": 0.3299, "cv_accuracy": 0.9122}\n', "cv_logloss", 0.3299),
    ('{"cv_logloss": 0.3299, "cv_accuracy": 0.9122}\n', "cv_accuracy", 0.9122),
    ("| end of training | val_bpc 3.6581 |\n", "val_bpc", 3.6581),
    ("INFO test_acc: 0.3137\n", "test_acc", 0.3137),
    ("2024-05-01 10:00:00,123 - train - INFO - f1=0.77\n", "f1", 0.77),
    ("INFO:root:eval_loss=1.25e-03\n", "eval_loss", 0.00125),
    ("{'eval_accuracy': 0.88, 'epoch': 3.0}\n", "eval_accuracy", 0.88),  # a printed Python dict
    ("loss: tensor(0.3012, grad_fn=<NllLossBackward0>)\n", "loss", 0.3012),
    ("Epoch 3: 100%|██████████| 50/50 [00:01<00:00, 30.1it/s, loss=0.512]\n", "loss", 0.512),
    ("Accuracy: 93.5%\n", "accuracy", 93.5),  # case-insensitive name, percent sign ignored
    ("val/loss: -0.25\n", "val/loss", -0.25),
    ("score=+7\n", "score", 7.0),
    ("r2 .5\n", "r2", 0.5),
]


@pytest.mark.parametrize(("log", "name", "expected"), FORMS)
def test_every_print_form(log: str, name: str, expected: float) -> None:
    r = parse_metric(log, name)
    assert r.error is None, r.error
    assert r.value == pytest.approx(expected)
    assert r.ok
    assert r.raw is not None and name.split("/")[-1].lower() in r.raw.lower()


def test_json_line_raw_keeps_the_quotes() -> None:
    assert parse_metric('{"cv_logloss": 0.33}\n', "cv_logloss").raw == '"cv_logloss": 0.33'


def test_last_occurrence_wins_and_the_curve_holds_every_finite_value() -> None:
    log = "acc=0.1\nsomething else\nacc=0.5\nacc=0.4\n"
    r = parse_metric(log, "acc")
    assert r.value == 0.4
    assert r.curve == [(0, 0.1), (1, 0.5), (2, 0.4)]  # no step printed: the occurrence index


@pytest.mark.parametrize(
    ("log", "curve"),
    [
        ("step 100 acc=0.5\nstep 200 acc=0.6\nstep 300 acc=0.7\n", [(100, 0.5), (200, 0.6), (300, 0.7)]),
        ("epoch 1 val_loss 0.9\nepoch 2 val_loss 0.7\n", [(1, 0.9), (2, 0.7)]),
        ('{"step": 5, "acc": 0.5}\n{"step": 10, "acc": 0.6}\n', [(5, 0.5), (10, 0.6)]),
        ("| step   50 | acc 0.2 |\n| step  100 | acc 0.3 |\n", [(50, 0.2), (100, 0.3)]),
        ("iter=10 acc=0.1\niter=20 acc=0.2\n", [(10, 0.1), (20, 0.2)]),
        ("global_step: 7 acc: 0.1\nglobal_step: 9 acc: 0.2\n", [(7, 0.1), (9, 0.2)]),
        ("Epoch 1/10 acc=0.1\nEpoch 2/10 acc=0.2\n", [(1, 0.1), (2, 0.2)]),
        # a final line without a step continues the axis
        ("step 100 acc=0.5\nstep 200 acc=0.6\nacc=0.7\n", [(100, 0.5), (200, 0.6), (201, 0.7)]),
        # a step restarting every epoch is composed with the epoch into one increasing axis
        ("[1,  10] acc: 0.1\n[1,  20] acc: 0.2\n[2,  10] acc: 0.3\n[2,  20] acc: 0.4\n",
         [(10, 0.1), (20, 0.2), (30, 0.3), (40, 0.4)]),
        ("Epoch [1/2], Step [100/200], acc: 0.1\nEpoch [1/2], Step [200/200], acc: 0.2\n"
         "Epoch [2/2], Step [100/200], acc: 0.3\n", [(100, 0.1), (200, 0.2), (300, 0.3)]),
        # steps that go backwards and no usable epoch: the occurrence index
        ("step 5 acc=0.1\nstep 3 acc=0.2\n", [(0, 0.1), (1, 0.2)]),
        # a fractional epoch is no step
        ("{'acc': 0.1, 'epoch': 0.5}\n{'acc': 0.2, 'epoch': 1.0}\n", [(0, 0.1), (1, 0.2)]),
    ],
)
def test_curves_take_the_step_printed_on_the_same_line(log: str, curve: list[tuple[int, float]]) -> None:
    assert parse_metric(log, "acc" if "acc" in log else "val_loss").curve == curve


def test_tqdm_carriage_returns_are_separate_lines() -> None:
    log = "step 1 loss=0.9\rstep 2 loss=0.8\rstep 3 loss=0.7\n"
    assert parse_named_curve(log, "loss") == [(1, 0.9), (2, 0.8), (3, 0.7)]


# --- failures ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "error"),
    [
        ("acc=nan\n", "metric 'acc' is nan"),
        ("acc: NaN\n", "metric 'acc' is nan"),
        ("acc=inf\n", "metric 'acc' is inf"),
        ("acc=-inf\n", "metric 'acc' is -inf"),
        ('{"acc": Infinity}\n', "metric 'acc' is inf"),
        ("acc=0.5\nacc=nan\n", "metric 'acc' is nan"),  # the last one counts, even after a good value
        ("loss=0.3\n", "metric 'acc' never printed"),
        ("", "metric 'acc' never printed"),
    ],
)
def test_nonfinite_and_missing_are_failures_never_values(log: str, error: str) -> None:
    r = parse_metric(log, "acc")
    assert r.value is None
    assert not r.ok
    assert r.error == error


def test_a_nan_in_the_middle_is_left_out_of_the_curve_but_does_not_fail_the_run() -> None:
    r = parse_metric("acc=0.1\nacc=nan\nacc=0.3\n", "acc")
    assert r.value == 0.3
    assert r.curve == [(0, 0.1), (2, 0.3)]


def test_nan_as_part_of_a_word_is_not_a_value() -> None:
    assert parse_metric("acc nanoseconds\nacc information\n", "acc").error == "metric 'acc' never printed"


# --- whole words ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "name"),
    [
        ("test_acc: 0.9\naccuracy: 0.8\ntop-acc: 0.7\nmodel.acc=0.6\n", "acc"),
        ("val_loss: 0.9\nval/loss: 0.8\ntrain-loss 0.7\nCrossEntropyLoss 0.1\n", "loss"),
        ("test_acc_top5: 0.9\n", "test_acc"),
    ],
)
def test_names_match_as_whole_words_only(log: str, name: str) -> None:
    r = parse_metric(log, name)
    assert r.value is None
    assert r.error is not None and r.error.startswith(f"metric {name!r} never printed")


def test_a_missing_metric_names_the_similar_ones_it_saw() -> None:
    r = parse_metric("test_acc: 0.9\naccuracy: 0.8\n", "acc")
    assert r.error == "metric 'acc' never printed (seen: test_acc, accuracy)"


def test_a_configured_longer_name_matches_and_is_not_confused_with_a_shorter_one() -> None:
    log = "acc: 0.1\ntest_acc: 0.9\nacc: 0.2\n"
    assert parse_metric(log, "test_acc").value == 0.9
    assert parse_metric(log, "acc").value == 0.2


# --- configured regex -------------------------------------------------------------------------------------------


def test_configured_regex_group_one_is_the_value_and_last_wins() -> None:
    log = ("Accuracy of the network on the 360 test images: 0.5\n"
           "Accuracy of the network on the 360 test images: 0.9889\n")
    r = parse_metric(log, "accuracy", regex=r"test images: ([0-9.eE+-]+|nan|inf)")
    assert r.value == 0.9889
    assert r.raw == "test images: 0.9889"
    assert r.curve == [(0, 0.5), (1, 0.9889)]


def test_configured_regex_capturing_nan_is_a_failure() -> None:
    r = parse_metric("test_acc: nan\n", "test_acc", regex=r"test_acc: ([0-9.eE+-]+|nan|inf)")
    assert r.value is None and r.error == "metric 'test_acc' is nan"


def test_configured_regex_that_does_not_match_says_so() -> None:
    r = parse_metric("acc=0.9\n", "acc", regex=r"accuracy: ([0-9.]+)")
    assert r.value is None
    assert r.error == "metric 'acc' never printed (regex 'accuracy: ([0-9.]+)' did not match)"


def test_configured_regex_is_lenient_about_a_trailing_full_stop_and_strict_about_words() -> None:
    assert parse_metric("final score: 0.75.\n", "score", regex=r"score: ([0-9.]+)").value == 0.75
    r = parse_metric("score: abc\n", "score", regex=r"score: (\w+)")
    assert r.value is None and r.error == "metric 'score' is not a number: 'abc'"


def test_configured_regex_anchors_work_per_line_and_steps_are_found() -> None:
    log = "step 1\nstep 10 ok\nacc=0.5 step 20\n"
    r = parse_metric(log, "acc", regex=r"^acc=([0-9.]+)")
    assert r.value == 0.5 and r.curve == [(20, 0.5)]


# --- metrics files ----------------------------------------------------------------------------------------------


def test_metrics_file_json_document(tmp_path: Path) -> None:
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps({"acc": 0.91, "loss": 0.2}, indent=2))
    assert parse_metrics_file(f, "acc").value == 0.91


def test_metrics_file_json_list_is_a_curve(tmp_path: Path) -> None:
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps({"acc": [0.5, 0.7, 0.8]}))
    r = parse_metrics_file(f, "acc")
    assert r.value == 0.8 and r.curve == [(0, 0.5), (1, 0.7), (2, 0.8)]


def test_metrics_file_records_with_steps(tmp_path: Path) -> None:
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps([{"step": 10, "acc": 0.5}, {"step": 20, "acc": 0.6}, {"step": 30, "loss": 1.0}]))
    r = parse_metrics_file(f, "acc")
    assert r.value == 0.6 and r.curve == [(10, 0.5), (20, 0.6)]


def test_metrics_file_json_lines(tmp_path: Path) -> None:
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "acc": 0.5}\n{"step": 2, "acc": 0.6}\n')
    r = parse_metrics_file(f, "acc")
    assert r.value == 0.6 and r.curve == [(1, 0.5), (2, 0.6)]


def test_metrics_file_name_value_lines(tmp_path: Path) -> None:
    f = tmp_path / "metrics.txt"
    f.write_text("loss=0.3\nacc=0.9\n")
    assert parse_metrics_file(f, "acc").value == 0.9


def test_metrics_file_nan_and_missing(tmp_path: Path) -> None:
    f = tmp_path / "metrics.json"
    f.write_text('{"acc": NaN}')
    assert parse_metrics_file(f, "acc").error == "metric 'acc' is nan"
    r = parse_metrics_file(tmp_path / "absent.json", "acc")
    assert r.value is None and r.error is not None and "was not written" in r.error
    f.write_text('{"loss": 0.1}')
    assert parse_metrics_file(f, "acc").error == "metric 'acc' never printed"


# --- the training loss ------------------------------------------------------------------------------------------


def test_loss_curve_skips_validation_and_test_losses() -> None:
    log = ("epoch 1 train_loss 1.0 val_loss 2.0\n"
           "epoch 2 train_loss 0.5 val_loss 1.5\n"
           "Test set: Average loss: 0.0331, Accuracy: 9833/10000 (98%)\n"
           "eval loss 3.0\nvalidation loss: 4.0\nfold 0: logloss 0.3\n")
    assert parse_loss_curve(log) == [(1, 1.0), (2, 0.5)]


def test_loss_curve_reads_the_common_training_prints() -> None:
    charlm = "".join(f"| step {s:5d} | train loss {3 - s / 1000:.4f} | {s / 10:.1f}s |\n" for s in (0, 50, 100))
    assert parse_loss_curve(charlm) == [(0, 3.0), (50, 2.95), (100, 2.9)]
    tutorial = "[1,  2000] loss: 2.196\n[1,  4000] loss: 1.859\n[2,  2000] loss: 1.521\n"
    assert parse_loss_curve(tutorial) == [(2000, 2.196), (4000, 1.859), (6000, 1.521)]
    keras = "313/313 - 1s - loss: 0.52 - accuracy: 0.8 - val_loss: 0.6\n313/313 - 1s - loss: 0.41 - val_loss: 0.5\n"
    assert parse_loss_curve(keras) == [(0, 0.52), (1, 0.41)]
    logging_ = "INFO epoch 1 train_loss 0.9000\nINFO epoch 2 train_loss 0.7000\nINFO test_acc: 0.3\n"
    assert parse_loss_curve(logging_) == [(1, 0.9), (2, 0.7)]
    mnist = ("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.300\nTrain Epoch: 1 [640/60000 (1%)]\tLoss: 1.9\n"
             "Test set: Average loss: 0.2, Accuracy: 9000/10000 (90%)\n")
    assert [v for _s, v in parse_loss_curve(mnist)] == [2.3, 1.9]


def test_loss_curve_keeps_nan_so_diagnosis_can_see_it() -> None:
    curve = parse_loss_curve("step 1 loss 2.0\nstep 2 loss 9.5\nstep 3 loss nan\n")
    assert curve[:2] == [(1, 2.0), (2, 9.5)]
    assert curve[2][0] == 3 and math.isnan(curve[2][1])


def test_loss_curve_does_not_interleave_two_series() -> None:
    log = "".join(f"step {s} loss {1 / s:.3f}\n" for s in range(1, 11)) + "epoch 1 train_loss 0.5\n"
    assert [s for s, _v in parse_loss_curve(log)] == list(range(1, 11))


def test_named_curve_keeps_nonfinite_values() -> None:
    curve = parse_named_curve("acc=0.1\nacc=inf\n", "acc")
    assert curve[0] == (0, 0.1) and math.isinf(curve[1][1])


# --- goals and candidates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "goal"),
    [
        ("acc", "maximize"), ("test_accuracy", "maximize"), ("cv_r2", "maximize"), ("val_f1", "maximize"),
        ("roc_auc", "maximize"), ("mAP", "maximize"), ("bleu", "maximize"), ("score", "maximize"),
        ("precision", "maximize"), ("recall", "maximize"), ("top1", "maximize"),
        ("loss", "minimize"), ("val_loss", "minimize"), ("cv_logloss", "minimize"), ("val_bpc", "minimize"),
        ("ppl", "minimize"), ("perplexity", "minimize"), ("rmse", "minimize"), ("mae", "minimize"),
        ("error_rate", "minimize"), ("test_err", "minimize"), ("nll", "minimize"), ("wer", "minimize"),
        ("cer", "minimize"), ("neg_mean_squared_error", "maximize"), ("neg_log_likelihood", "minimize"),
        ("throughput", None), ("foo", None),
    ],
)
def test_guess_goal(name: str, goal: str | None) -> None:
    assert guess_goal(name) == goal


def _names(log: str) -> list[str]:
    return [c.name for c in find_candidates(log)]


def test_candidates_rank_the_final_held_out_metric_first() -> None:
    digits = "".join(f"epoch {e:3d}  train_loss {1 / e:.4f}\n" for e in range(1, 21))
    digits += "train_time_s=2.1\ntest_accuracy=0.5562\n"
    assert _names(digits) == ["test_accuracy", "train_loss"]  # train_time_s and epoch are never candidates
    bc = "fold 0: logloss 0.3111\nfold 1: logloss 0.35\ndone in 6.6s\n"
    bc += '{"cv_logloss": 0.3299, "cv_accuracy": 0.9122}\n'
    assert _names(bc)[:2] == ["cv_logloss", "cv_accuracy"]
    diabetes = "".join(f"fold {k}: r2 0.1{k}\n" for k in range(5)) + "elapsed 12.1s\ncv_r2: 0.1234\n"
    assert _names(diabetes)[0] == "cv_r2"
    mnist = "INFO config {'hidden': 32, 'lr': 0.01, 'epochs': 20}\n"
    mnist += "".join(f"INFO epoch {e} train_loss {1 / e:.4f}\n" for e in range(1, 11))
    mnist += "INFO training took 3.1 s\nINFO test_acc: 0.3137\n"
    assert _names(mnist) == ["test_acc", "train_loss"]


def test_candidate_fields() -> None:
    log = "step 1 loss=2.0\nstep 2 loss=1.5\nval_bpc 3.25\n"
    by = {c.name: c for c in find_candidates(log)}
    assert set(by) == {"loss", "val_bpc"}
    assert (by["loss"].value, by["loss"].count, by["loss"].last_line_index, by["loss"].form) == (1.5, 2, 1,
                                                                                                 "name=value")
    assert (by["val_bpc"].value, by["val_bpc"].count, by["val_bpc"].form) == (3.25, 1, "name value")
    assert find_candidates('{"acc": 0.5}\n')[0].form == "json"
    assert find_candidates("acc: 0.5\n")[0].form == "name: value"


def test_prose_numbers_are_not_candidates_but_a_metric_sentence_is() -> None:
    log = ("[1,  10] loss: 2.0\n[1,  20] loss: 1.8\nFinished Training\n"
           "Accuracy of the network on the 360 test images: 0.9889\n")
    cands = find_candidates(log)
    assert [c.name for c in cands] == ["Accuracy", "loss"]
    top = cands[0]
    assert top.form == "sentence" and top.value == 0.9889 and top.regex is not None
    # the regex it carries finds the value again
    assert parse_metric(log, top.name, top.regex).value == 0.9889
    assert re.compile(top.regex).groups == 1


# --- scale ------------------------------------------------------------------------------------------------------


def _big_log(n: int = 200_000) -> str:
    lines = [f"2024-01-01 12:00:00 INFO | step {s:6d} | train loss {3 - s / 100_000:.4f} | lr 1.0e-03 | 9.1 it/s |"
             for s in range(n)]
    lines.append("| end of training | val_bpc 3.6581 |")
    return "\n".join(lines)


def test_a_200k_line_log_parses_correctly() -> None:
    """Correctness on a big log; its speed is a figure printed by bench/parsing.py, not a timed test."""
    log = _big_log()
    assert parse_metric(log, "val_bpc", r"val_bpc ([0-9.]+)").value == 3.6581
    assert len(parse_loss_curve(log)) > 1000
    assert parse_metric(log, "val_bpc").value == 3.6581


def test_long_curves_are_thinned_keeping_the_last_point_and_the_first_nan() -> None:
    n = 3 * MAX_CURVE_POINTS
    lines = [f"step {s} loss {1 / (s + 1):.6f}" for s in range(n)]
    lines[7777] = "step 7777 loss nan"
    log = "\n".join(lines)
    curve = parse_loss_curve(log)
    assert len(curve) <= MAX_CURVE_POINTS + 1
    last = float(f"{1 / n:.6f}")
    assert curve[0][0] == 0 and curve[-1] == (n - 1, last)
    assert any(s == 7777 and math.isnan(v) for s, v in curve)
    r = parse_metric(log, "loss")
    assert r.value == last and len(r.curve) <= MAX_CURVE_POINTS
    steps = [s for s, _v in r.curve]
    assert steps == sorted(steps)


# --- a regex proposed for a metric printed as prose -------------------------------------------------------------


def test_a_metric_printed_as_prose_gets_a_regex_proposed_that_reads_it_back() -> None:
    log = "[1, 2000] loss: 1.2\nFinished Training\nAccuracy of the network on the 540 test images: 0.6944\n"
    r = parse_metric(log, "accuracy")
    assert r.value is None and r.error is not None
    assert "the line 'Accuracy of the network on the 540 test images: 0.6944' holds it: set metric.regex" in r.error
    line, regex = propose_regex(log, "accuracy") or ("", "")
    assert line.startswith("Accuracy of the network")
    assert parse_metric(log, "accuracy", regex).value == 0.6944
    # the count in the prose is not part of the regex: another test-set size still matches
    assert parse_metric(log.replace("540", "10000"), "accuracy", regex).value == 0.6944


def test_no_regex_is_proposed_from_a_longer_word_or_a_line_without_a_number() -> None:
    assert propose_regex("test_acc: 0.9\naccuracy: 0.8\n", "acc") is None
    assert propose_regex("computing the val loss now\n", "val loss") is None
    line, regex = propose_regex("Val-Loss after training = 1.25e-2\n", "val loss") or ("", "")
    assert line == "Val-Loss after training = 1.25e-2"
    assert parse_metric("Val-Loss after training = 1.25e-2\n", "val loss", regex).value == 0.0125


MNIST_EXAMPLE = ("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.300039\nTrain Epoch: 1 [59520/60000 (99%)]\tLoss: 0.017424\n\n"
                 "Test set: Average loss: 0.0479, Accuracy: 9842/10000 (98%)\n\n"
                 "Test set: Average loss: 0.0326, Accuracy: 9894/10000 (99%)\n\n")
LIGHTNING_TEST = ("Epoch 1: 100%|██████████| 469/469 [00:05<00:00, v_num=0, train_loss=0.201, val_loss=0.150]\n"
                  "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┓\n"
                  "┃        Test metric        ┃       DataLoader 0        ┃\n"
                  "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━┩\n"
                  "│         test_acc          │    0.9812999963760376     │\n"
                  "│         test_loss         │    0.06120000034570694    │\n"
                  "└───────────────────────────┴───────────────────────────┘\n")


def test_a_count_out_of_a_total_is_read_as_its_ratio() -> None:
    """PyTorch's MNIST example prints `Accuracy: 9894/10000 (99%)`: the accuracy is 0.9894 (it was read as 9894),
    per epoch as a curve, and init offers it with that value."""
    assert parse_metric(MNIST_EXAMPLE, "Accuracy").value == pytest.approx(0.9894)
    assert parse_named_curve(MNIST_EXAMPLE, "accuracy") == [(0, pytest.approx(0.9842)), (1, pytest.approx(0.9894))]
    assert {c.name: c.value for c in find_candidates(MNIST_EXAMPLE)}["Accuracy"] == pytest.approx(0.9894)
    assert parse_metric("epoch 3/10 acc 0.5\n", "acc").value == 0.5  # a step counter beside it is not the value
    assert parse_metric("acc: 3/0\n", "acc").value == 3.0  # no total: no ratio


def test_a_table_of_results_is_read_across_its_cell_borders() -> None:
    """The table PyTorch Lightning prints after `trainer.test()` (and a Markdown one): name and value sit in cells."""
    assert parse_metric(LIGHTNING_TEST, "test_acc").value == pytest.approx(0.9813, abs=1e-4)
    assert parse_metric(LIGHTNING_TEST, "test_loss").value == pytest.approx(0.0612, abs=1e-4)
    assert parse_metric("| metric | value |\n|---|---|\n| val_loss | 0.231 |\n", "val_loss").value == 0.231
    names = [c.name for c in find_candidates(LIGHTNING_TEST)]
    assert names[:2] == ["test_loss", "test_acc"] or names[:2] == ["test_acc", "test_loss"]


def test_metrics_file_csv_from_keras_and_lightning_loggers(tmp_path: Path) -> None:
    """A CSV whose header names the metric: Lightning's CSVLogger leaves validation cells empty on training rows and
    counts `step`; Keras' CSVLogger writes one row per epoch."""
    lightning = tmp_path / "metrics.csv"
    lightning.write_text("epoch,step,train_loss,val_loss,val_acc\n0,99,0.5,,\n0,99,,0.42,0.88\n1,199,0.3,,\n"
                         "1,199,,0.31,0.91\n")
    r = parse_metrics_file(lightning, "val_acc")
    assert r.value == 0.91 and r.curve == [(99, 0.88), (199, 0.91)]
    keras = tmp_path / "training.log"
    keras.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.91,0.29,0.95,0.14\n1,0.95,0.14,0.96,0.10\n")
    r = parse_metrics_file(keras, "val_loss")
    assert r.value == 0.10 and r.curve == [(0, 0.14), (1, 0.10)]
    assert parse_metrics_file(keras, "val_auc").value is None  # not a column: not read from another one


def test_a_metrics_file_glob_reads_the_newest_match(tmp_path: Path) -> None:
    """`metric.file = "lightning_logs/version_*/metrics.csv"`: Lightning numbers a new folder per run."""
    from nightlab.agent import run_metrics
    from nightlab.agent.config import MetricConfig

    for i, acc in ((0, 0.5), (1, 0.9)):
        d = tmp_path / "lightning_logs" / f"version_{i}"
        d.mkdir(parents=True)
        (d / "metrics.csv").write_text(f"epoch,step,val_acc\n0,9,{acc}\n")
        os.utime(d / "metrics.csv", (1000 + i, 1000 + i))
    cfg = MetricConfig(name="val_acc", goal="maximize", file="lightning_logs/version_*/metrics.csv")
    assert run_metrics.read_run(cfg, "", tmp_path).reading.value == 0.9
    none = MetricConfig(name="val_acc", goal="maximize", file="missing_*/metrics.csv")
    assert run_metrics.read_run(none, "val_acc: 0.7\n", tmp_path).reading.value == 0.7  # no match: the log


# --- shapes real libraries print (found probing real logs) -------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ["{'val_loss': np.float32(0.4012), 'acc': np.float64(0.9)}",  # NumPy 2 scalars (scikit-learn's metrics)
     "val_loss: tensor([0.4012], device='cuda:0')",  # a one-element torch tensor
     "val_loss: Array(0.4012, dtype=float32)",  # JAX
     "\x1b[1mval_loss\x1b[0m: \x1b[32m0.4012\x1b[0m"],  # a rich logger's colours
)
def test_a_wrapped_or_coloured_value_is_read_not_an_older_plain_one(line: str) -> None:
    """Each of these had been no `name: value` pair, so the older plain value before it was taken as the metric."""
    assert parse_metric(f"epoch 1 val_loss: 0.5\n{line}\n", "val_loss").value == 0.4012


def test_a_wrapped_nan_is_a_failure() -> None:
    reading = parse_metric("val_loss: 0.5\n{'val_loss': np.float32(nan)}\n", "val_loss")
    assert reading.error == "metric 'val_loss' is nan"


NANOGPT_LOG = ("step 0: train loss 4.2874, val loss 4.2823\niter 0: loss 4.2654, time 10.00ms, mfu -100.00%\n"
               "step 250: train loss 1.9697, val loss 2.0713\niter 250: loss 2.0102, time 9.00ms, mfu 1.00%\n"
               "step 500: train loss 1.4675, val loss 1.6684\niter 500: loss 1.5237, time 9.00ms, mfu 1.00%\n")


def test_a_metric_named_in_two_words_is_a_candidate_and_ranks_first() -> None:
    """nanoGPT prints `val loss 1.6684`: the only candidate had been `loss`, each iteration's minibatch loss, and
    init took it without asking."""
    names = [c.name for c in find_candidates(NANOGPT_LOG)]
    assert names[0] == "val loss" and {"loss", "train loss"} <= set(names)
    reading = parse_metric(NANOGPT_LOG, "val loss")
    assert reading.value == 1.6684 and reading.curve == [(0, 4.2823), (250, 2.0713), (500, 1.6684)]


@pytest.mark.parametrize(
    ("log", "name"),
    [("{'val_loss': np.float32(0.4012)}\n", "val_loss"),  # (read directly now; the proposal had read 32)
     ("copypaste: AP,AP50,AP75\ncopypaste: 38.5123,59.12,41.6\n", "AP"),  # detectron2: had read the 50 of AP50
     ("│ test_acc/dataloader_idx_1 │        │   0.7012    │\n", "test_acc"),  # had read the dataloader's 1
     ('{"step": 500, "train/loss": NaN, "val/loss": NaN, "val/acc": 0.1}\n', "loss")],  # had read val/acc as loss
)
def test_a_proposed_regex_never_reads_a_digit_out_of_a_name(log: str, name: str) -> None:
    proposal = propose_regex(log, name)
    if proposal is not None:
        value = parse_metric(log, name, proposal[1]).value
        assert value is not None and str(value) not in ("32.0", "50.0", "1.0", "0.1"), proposal


def test_progress_bar_redraws_are_one_point_per_epoch() -> None:
    """Lightning 2 keeps one bar over the run and redraws it with `\\r`; Keras redraws one line per epoch. The last
    redraw of each epoch is its point; a `\\r` log with a step per redraw keeps every step."""
    lightning = "".join(f"Epoch {e}: {p}%|#| {p}/100 [00:01<00:00, v_num=0, train_loss={0.9 - e / 10:.2f}, "
                        f"val_loss={0.8 - e / 10:.2f}]\r" for e in range(4) for p in (10, 50, 100)) + "\n"
    assert parse_metric(lightning, "val_loss").curve == [(0, 0.8), (1, 0.7), (2, 0.6), (3, 0.5)]
    assert parse_loss_curve(lightning) == [(0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6)]
    keras = "".join(f"Epoch {e}/3\n" + "".join(f"{b}/3 [==] - loss: {1 - e / 10 - b / 100:.3f}\r" for b in (1, 2, 3))
                    + "\n" for e in (1, 2, 3))
    assert [v for _s, v in parse_named_curve(keras, "loss")] == [0.87, 0.77, 0.67]


FASTAI_LOG = """epoch     train_loss  valid_loss  accuracy  error_rate  time
0         0.512345    0.401234    0.876000  0.124000    00:05
1         0.312345    0.301234    0.906000  0.094000    00:05
2         0.212345    0.251234    0.926000  0.074000    00:04
"""


def test_a_results_table_is_read_by_its_columns() -> None:
    """fastai prints no `name value` pair, only a table: each column is a metric over the epochs, a candidate, and
    its train_loss column is the training curve."""
    reading = parse_metric(FASTAI_LOG, "accuracy")
    assert reading.value == 0.926 and reading.curve == [(0, 0.876), (1, 0.906), (2, 0.926)]
    assert parse_metric(FASTAI_LOG, "valid_loss").value == 0.251234
    assert parse_loss_curve(FASTAI_LOG) == [(0, 0.512345), (1, 0.312345), (2, 0.212345)]
    names = {c.name: c.value for c in find_candidates(FASTAI_LOG)}
    assert names.get("accuracy") == 0.926 and names.get("valid_loss") == 0.251234 and "epoch" not in names


ULTRALYTICS_LOG = """\
      Epoch    GPU_mem   box_loss   cls_loss   dfl_loss  Instances       Size
        1/3         0G      1.234      2.345      1.111         45        640: 100%|##########| 8/8 [00:10<00:00]
                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95): 100%|##########| 4/4 [00:01]
                   all        128        929      0.663      0.542      0.612      0.451
      Epoch    GPU_mem   box_loss   cls_loss   dfl_loss  Instances       Size
        2/3         0G      1.134      2.245      1.011         45        640: 100%|##########| 8/8 [00:10<00:00]
                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95): 100%|##########| 4/4 [00:01]
                   all        128        929      0.701      0.589      0.652      0.478

3 epochs completed in 0.010 hours.
Validating runs/detect/train/weights/best.pt...
                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95): 100%|##########| 4/4 [00:01]
                   all        128        929      0.702      0.588      0.653      0.479
                person         61        254      0.811      0.702      0.781      0.551
                   car         20         41      0.511      0.402      0.431      0.301
"""


def test_a_table_whose_header_ends_in_a_progress_bar_and_whose_rows_are_labelled() -> None:
    """Ultralytics validates under a header that ends in a progress bar, with `Box(P` for the boxes' precision,
    and then prints one row for all classes followed by one per class: the metric is the `all` row's, each time
    (a regex proposed from the header line would have read the progress bar's 100)."""
    reading = parse_metric(ULTRALYTICS_LOG, "mAP50-95")
    assert reading.value == 0.479 and [v for _, v in reading.curve] == [0.451, 0.478, 0.479]
    assert parse_metric(ULTRALYTICS_LOG, "P").value == 0.702
    names = {c.name: c.value for c in find_candidates(ULTRALYTICS_LOG)}
    assert names.get("mAP50-95") == 0.479 and names.get("mAP50") == 0.653


DETECTRON2_LOG = """\
[12/07 10:00:00 d2.evaluation.coco_evaluation]: Evaluation results for bbox:
|   AP   |  AP50  |  AP75  |  APs   |  APm   |  APl   |
|:------:|:------:|:------:|:------:|:------:|:------:|
| 40.215 | 61.012 | 43.501 | 24.003 | 43.702 | 52.114 |
[12/07 10:00:00 d2.evaluation.coco_evaluation]: Per-category bbox AP:
| category   | AP     | category   | AP     |
|:-----------|:-------|:-----------|:-------|
| person     | 55.102 | bicycle    | 30.221 |
[12/07 10:00:01 d2.evaluation.testing]: copypaste: Task: bbox
[12/07 10:00:01 d2.evaluation.testing]: copypaste: AP,AP50,AP75,APs,APm,APl
[12/07 10:00:01 d2.evaluation.testing]: copypaste: 40.2150,61.0120,43.5010,24.0030,43.7020,52.1140
"""


def test_a_markdown_table_of_results_is_read_by_its_columns() -> None:
    """Detectron2 prints COCO's results as a Markdown table: the column under the header is the metric, and the
    per-category tables after it (names in their rows) are not its value."""
    assert parse_metric(DETECTRON2_LOG, "AP").value == 40.215
    assert parse_metric(DETECTRON2_LOG, "AP50").value == 61.012
    names = {c.name: c.value for c in find_candidates(DETECTRON2_LOG)}
    assert names.get("AP") == 40.215 and names.get("APl") == 52.114


def test_loss_curves_of_lightning_step_and_epoch_names_and_fairseq_tags() -> None:
    """Lightning's `train_loss_step` / `train_loss_epoch` are two training series (none was read); fairseq tags a
    whole line `| valid |`, so its `loss` field is the validation loss, not a point of the training curve."""
    pl = "".join(f"Epoch {e}: 100%|#| 50/50 [v_num=0, train_loss_step={0.9 - e / 10 - b / 100:.3f}, val_loss=0.5, "
                 f"train_loss_epoch={0.85 - e / 10:.3f}]\r" for e in range(3) for b in range(3)) + "\n"
    assert parse_loss_curve(pl) == [(0, 0.88), (1, 0.78), (2, 0.68)]
    fairseq = ("| train | epoch 001 | loss 5.5 | ppl 45\n| valid | epoch 001 | valid on 'valid' subset | loss 5.2 |\n"
               "| train | epoch 002 | loss 4.9 | ppl 30\n| valid | epoch 002 | valid on 'valid' subset | loss 4.6 |\n")
    assert parse_loss_curve(fairseq) == [(1, 5.5), (2, 4.9)]


def test_an_average_meter_s_running_average_is_the_value() -> None:
    """timm and the PyTorch ImageNet example print `Acc@1  81.250 ( 79.512)`: the last batch, then the running
    average over the whole set in parentheses. The average is the metric (the last batch had been read), and `Acc@1`
    is a candidate name. A percentage in parentheses after a ratio, or words in them, change nothing."""
    log = "".join(f"Test: [{i:>4d}/78]  Loss:  {0.8 + i / 1000:.4f} (0.8500)  Acc@1: {81.25 - i / 100:8.4f} "
                  f"({79.5 + i / 1000:8.4f})\n" for i in (0, 50, 78))
    assert parse_metric(log, "Acc@1").value == 79.578
    assert {c.name: c.value for c in find_candidates(log)}.get("Acc@1") == 79.578
    assert parse_metric("Accuracy: 9894/10000 (99%)\n", "Accuracy").value == 0.9894
    assert parse_metric("val_loss 0.5 (best 0.4)\n", "val_loss").value == 0.5


def test_a_curve_is_the_lines_of_the_value_s_kind() -> None:
    """The ImageNet example prints `Acc@1` on every training batch and every test batch (running averages) and once
    per epoch in its summary ` * Acc@1 …`, the value: the curve is the summaries, one point per epoch (it interleaved
    training accuracy with test accuracy, and early stopping compares curves). The MNIST example's `loss` curve is the
    per-epoch `Test set: Average loss`, not the batches' `Train Epoch: … Loss:`. Lines of one kind with an
    annotation stay one curve, and a value printed once after the epochs' lines keeps them all."""
    batch = ("Epoch: [{e}][{b:>3d}/100]\tTime  0.1 ( 0.3)\tLoss 6.5 (6.7)\tAcc@1 {a:6.2f} ({a:6.2f})\t"
             "Acc@5 {a:6.2f} ({a:6.2f})\n")
    test = "Test: [ 0/20]\tTime  0.1 ( 0.1)\tLoss 5.0 (5.0)\tAcc@1 {a:6.2f} ({a:6.2f})\tAcc@5 40.00 ( 40.00)\n"
    chunks: list[str] = []
    for e, summary in ((0, 21.13), (1, 31.5), (2, 35.25)):
        chunks += [batch.format(e=e, b=b, a=10.0 * e + b / 100) for b in (0, 50)]
        chunks += [test.format(a=summary - 1), f" * Acc@1 {summary:.3f} Acc@5 41.862\n"]
    got = parse_metric("".join(chunks), "Acc@1")
    assert got.value == 35.25 and [v for _s, v in got.curve] == [21.13, 31.5, 35.25]
    mnist = MNIST_EXAMPLE.replace("\n\nTest set: Average loss: 0.0326", "\nTrain Epoch: 2 [0/60000 (0%)]\tLoss: "
                                  "0.100000\n\nTest set: Average loss: 0.0326")
    loss = parse_metric(mnist, "loss")
    assert loss.value == 0.0326 and [v for _s, v in loss.curve] == [0.0479, 0.0326]
    noted = "[step 100] val_acc=0.80\n[step 200] new best! val_acc=0.85\n[step 300] val_acc=0.84\n"
    assert [v for _s, v in parse_metric(noted, "val_acc").curve] == [0.80, 0.85, 0.84]
    once = "epoch 1: val_acc=0.80\nepoch 2: val_acc=0.85\nTest set: val_acc=0.83\n"
    assert [v for _s, v in parse_metric(once, "val_acc").curve] == [0.80, 0.85, 0.83]


def test_what_looks_like_a_new_form_but_is_not_one() -> None:
    """A signed delta or a count in parentheses is no running average; a multi-element array is no scalar (per-class
    F1 is not class 0's); rich's terminal hyperlinks (OSC 8, ended by ESC \\) are stripped like colours; two words
    over two numbers are no results table (a run's printed settings made `cuda` a metric)."""
    assert parse_metric("val_acc: 0.912 (+0.004)\n", "val_acc").value == 0.912
    assert parse_metric("val_loss: 0.52 (-0.03)\n", "val_loss").value == 0.52
    assert parse_metric("val_acc 0.91 (3)\n", "val_acc").value == 0.91
    assert parse_metric('{"f1": array([0.91, 0.42, 0.63])}\n', "f1").value is None
    link = "\x1b]8;id=1;file:///w/train.py\x1b\\train.py:12\x1b]8;;\x1b\\ val_loss: 0.5\n"
    assert parse_metric(link * 200, "val_loss").value == 0.5
    names = {c.name for c in find_candidates("Device cuda\nlr 0.001\nbatch_size 64\nFinal results\ntest_acc 0.93\n")}
    assert "cuda" not in names and "results" not in names


def test_a_name_that_begins_a_longer_name_is_not_read_from_its_range() -> None:
    """`mAP@0.5 = 0.61, mAP@0.5:0.95 = 0.41` (a detector's COCO AP at IoU 0.5, then over 0.5 to 0.95): `mAP@0.5` had
    been read as 0.95 from the second name's range (`mAP@0.5` `:` `0.95`), and ended every run at 0.95; `nightlab
    init` offered it so, and never offered `mAP@0.5:0.95`."""
    log = "Epoch 10: mAP@0.5 = 0.61, mAP@0.5:0.95 = 0.41\nEpoch 11: mAP@0.5 = 0.63, mAP@0.5:0.95 = 0.43\n"
    r = parse_metric(log, "mAP@0.5")
    assert r.value == 0.63 and [v for _, v in r.curve] == [0.61, 0.63]
    assert parse_metric(log, "mAP@0.5:0.95").value == 0.43
    offered = {c.name: c.value for c in find_candidates(log)}
    assert offered == {"mAP@0.5": 0.63, "mAP@0.5:0.95": 0.43}
    # a plain `name: value` with a later pair on the line is read as before
    assert parse_metric("acc: 0.91 loss: 0.3\n", "acc").value == 0.91


def test_a_detector_s_validation_table_offers_its_map_not_its_counts() -> None:
    """Ultralytics' validation table (`Class Images Instances Box(P R mAP50 mAP50-95)`): `nightlab init` offered the
    number of images first, then of instances, and `mAP50` ranked as no metric (`map50` was no metric word)."""
    log = ("                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95): 100%|##########| "
           "4/4 [00:01<00:00,  2.50it/s]\n"
           "                   all        128        929      0.712      0.621      0.698      0.456\n")
    offered = [c.name for c in find_candidates(log)]
    # both on one row: the average over IoU 0.5 to 0.95 is the headline (COCO's AP; Ultralytics' best weights)
    assert offered[:2] == ["mAP50-95", "mAP50"] and "Images" not in offered and "Instances" not in offered
    assert [c.name for c in find_candidates("Epoch 10: mAP@0.5 = 0.61, mAP@0.5:0.95 = 0.41\n")] == \
        ["mAP@0.5:0.95", "mAP@0.5"]
    assert guess_goal("mAP50-95") == "maximize" and guess_goal("AP75") == "maximize"
    assert guess_goal("ndcg@10") == "maximize" and guess_goal("loss") == "minimize"


def test_gradient_boosting_logs_offer_the_held_out_set_first() -> None:
    """XGBoost with `eval_set=[(X_train, y_train), (X_val, y_val)]` prints `validation_0-rmse` (the training set)
    before `validation_1-rmse`, and stops early on the last set: init offered the training set's error first. CatBoost
    prints `learn: … test: … best: … total: 500ms remaining: 1s`: init offered `learn` first, and its clocks."""
    xgb = ("[0]\tvalidation_0-rmse:0.51\tvalidation_1-rmse:0.62\n"
           "[1]\tvalidation_0-rmse:0.41\tvalidation_1-rmse:0.55\n")
    assert [(c.name, c.value) for c in find_candidates(xgb)] == [("validation_1-rmse", 0.55),
                                                                 ("validation_0-rmse", 0.41)]
    native = "[0]\ttrain-rmse:0.51\teval-rmse:0.62\n[1]\ttrain-rmse:0.41\teval-rmse:0.55\n"
    assert find_candidates(native)[0].name == "eval-rmse"
    catboost = ("0:\tlearn: 0.6\ttest: 0.65\tbest: 0.65 (0)\ttotal: 5ms\tremaining: 1s\n"
                "99:\tlearn: 0.3\ttest: 0.4\tbest: 0.39 (80)\ttotal: 500ms\tremaining: 0us\n")
    offered = [(c.name, c.value) for c in find_candidates(catboost)]
    assert offered[0] == ("test", 0.4) and ("learn", 0.3) in offered
    assert not {"total", "remaining"} & {name for name, _ in offered}
    assert parse_metric(catboost, "test").value == 0.4
    # a threshold is no set index: `mAP50` and `mAP75` keep their order, `total_loss` is still a metric
    assert [c.name for c in find_candidates("mAP50: 0.61 mAP75: 0.42\n")] == ["mAP50", "mAP75"]
    assert "total_loss" in {c.name for c in find_candidates("total_loss: 0.3\n")}
