"""Features made from the label: a forecasting script's lag features, whose shift is all that keeps the answer out
of them, and a tabular script's frame-wide target mean. The leak sits in neither the code that measures nor a split
statement, so the guard finds it by which columns are the label and which new column writes read one at its own
row or a later one; a feature that reads no label, added beside a held data load, stays free."""

from __future__ import annotations

import ast

import pytest

from nightlab.agent import measuring
from nightlab.agent.policy.label_leaks import label_columns

FORECAST = {
    "conf.yaml": "data: data/sales.csv\nlags: [1, 7, 14]\nwindows: [7, 28]\nn_estimators: 300\n",
    "forecast.py": '''\
import argparse

import numpy as np
import pandas as pd
import yaml
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import TimeSeriesSplit

TARGET = "sales"


def make_features(df, lags, windows):
    df = df.sort_values(["store", "date"]).copy()
    for lag in lags:
        df[f"lag_{lag}"] = df.groupby("store")[TARGET].shift(lag)
    for w in windows:
        df[f"roll_{w}"] = df[TARGET].shift(1).rolling(w).mean()
    df["dow"] = df["date"].dt.dayofweek
    return df.dropna()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="conf.yaml")
    cfg = yaml.safe_load(open(ap.parse_args().config))
    df = make_features(pd.read_csv(cfg["data"], parse_dates=["date"]), cfg["lags"], cfg["windows"])
    feats = [c for c in df.columns if c not in ("date", "store", TARGET)]
    X, y = df[feats].values, df[TARGET].values
    maes = []
    for tr, te in TimeSeriesSplit(n_splits=4, gap=7).split(X):
        model = HistGradientBoostingRegressor(max_iter=cfg["n_estimators"]).fit(X[tr], y[tr])
        maes.append(mean_absolute_error(y[te], model.predict(X[te])))
    print(f"cv_mae={np.mean(maes):.4f}")


if __name__ == "__main__":
    main()
''',
}

PATIENTS = {
    "cv.py": '''\
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

df = pd.read_csv("data/visits.csv")
features = [c for c in df.columns if c not in ("patient_id", "visit_id", "label")]
X, y, groups = df[features].values, df["label"].values, df["patient_id"].values
oof = np.zeros(len(df))
for tr, va in GroupKFold(n_splits=5).split(X, y, groups):
    oof[va] = LogisticRegression(C=1.0).fit(X[tr], y[tr]).predict_proba(X[va])[:, 1]
print(f"oof_auc={roc_auc_score(y, oof):.4f}")
''',
}

SPLIT_FILES = {
    "train.py": '''\
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

df = pd.read_csv("data/churn.csv")
train_df, test_df = train_test_split(df, test_size=0.2, random_state=0)
cols = ["tenure", "charges"]
clf = RandomForestClassifier(n_estimators=200).fit(train_df[cols], train_df["churned"])
print(f"test_acc={clf.score(test_df[cols], test_df['churned']):.4f}")
''',
}


def _refusals(files: dict[str, str], path: str, metric: str, old: str, new: str) -> list[str]:
    assert old in files[path], old
    return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, metric)


@pytest.mark.parametrize(("old", "new"), [
    ('df.groupby("store")[TARGET].shift(lag)', 'df.groupby("store")[TARGET].shift(-lag)'),  # the future
    ("df[TARGET].shift(1).rolling(w).mean()", "df[TARGET].rolling(w).mean()"),  # the row's own target
    ("df[TARGET].shift(1).rolling(w).mean()", "df[TARGET].shift(0).rolling(w).mean()"),
    ('    df["dow"] = df["date"].dt.dayofweek\n',
     '    df["dow"] = df["date"].dt.dayofweek\n'
     '    df["store_mean"] = df.groupby("store")["sales"].transform("mean")\n'),
    ('    df["dow"] = df["date"].dt.dayofweek\n',
     '    df["dow"] = df["date"].dt.dayofweek\n    df = df.assign(diff=df[TARGET].diff(1))\n'),
])
def test_a_feature_that_reads_the_target_at_its_own_row_or_later_is_refused(old: str, new: str) -> None:
    refused = _refusals(FORECAST, "forecast.py", "cv_mae", old, new)
    assert any("reads the label 'sales' at its own row or a later one" in r for r in refused), refused


@pytest.mark.parametrize(("old", "new"), [
    ("shift(lag)", "shift(lag + 7)"),  # a longer lag is still the past
    ("df[TARGET].shift(1).rolling(w).mean()", "df[TARGET].shift(1).rolling(w).median()"),
    ("df[TARGET].shift(1).rolling(w).mean()", "df[TARGET].shift().ewm(span=w).mean()"),  # shift() is one row back
    ('    df["dow"] = df["date"].dt.dayofweek\n',
     '    df["dow"] = df["date"].dt.dayofweek\n    df["month"] = df["date"].dt.month\n'),
    ('    df["dow"] = df["date"].dt.dayofweek\n',
     '    df["dow"] = df["date"].dt.dayofweek\n    df["lag_364"] = df.groupby("store")[TARGET].shift(periods=364)\n'),
])
def test_features_from_the_past_and_from_other_columns_stay_free(old: str, new: str) -> None:
    assert _refusals(FORECAST, "forecast.py", "cv_mae", old, new) == []


def test_the_label_is_what_a_fit_is_handed_not_the_features() -> None:
    assert label_columns([ast.parse(FORECAST["forecast.py"])]) == {"sales"}
    assert label_columns([ast.parse(PATIENTS["cv.py"])]) == {"label"}
    assert label_columns([ast.parse(SPLIT_FILES["train.py"])]) == {"churned"}
    split_xy = "X_tr, X_te, y_tr, y_te = train_test_split(df[['a', 'b']], df['y'])\nclf.fit(X_tr, y_tr)\n"
    assert label_columns([ast.parse(split_xy)]) == {"y"}


def test_a_target_mean_over_every_row_is_refused_a_label_free_feature_is_not() -> None:
    load = 'df = pd.read_csv("data/visits.csv")\n'
    leak = _refusals(PATIENTS, "cv.py", "oof_auc", load,
                     load + 'df["pt_rate"] = df.groupby("patient_id")["label"].transform("mean")\n')
    assert any("df['pt_rate'] reads the label 'label'" in r for r in leak), leak
    # the data load is held (the metric's rows come from it), but a new column no measured code can name is a feature
    assert _refusals(PATIENTS, "cv.py", "oof_auc", load,
                     load + 'df["n_visits"] = df.groupby("patient_id")["visit_id"].transform("count")\n') == []
    # rewriting a column the measurement reads (the groups) is no new feature
    assert _refusals(PATIENTS, "cv.py", "oof_auc", load, load + 'df["patient_id"] = df["visit_id"]\n') != []


def test_the_training_part_may_be_target_encoded_and_a_split_may_stratify_on_the_label() -> None:
    split = "train_df, test_df = train_test_split(df, test_size=0.2, random_state=0)\n"
    encoded = split + 'train_df["tenure_rate"] = train_df.groupby("tenure")["churned"].transform("mean")\n'
    assert not any("reads the label" in r for r in _refusals(SPLIT_FILES, "train.py", "test_acc", split, encoded))
    stratified = ('df["churn_bin"] = df["churned"].astype(int)\n'
                  "train_df, test_df = train_test_split(df, test_size=0.2, random_state=0, stratify=df['churn_bin'])\n")
    assert not any("reads the label" in r for r in _refusals(SPLIT_FILES, "train.py", "test_acc", split, stratified))
    leak = 'df["churn_copy"] = df["churned"]\n' + split
    assert any("df['churn_copy'] reads the label 'churned'" in r
               for r in _refusals(SPLIT_FILES, "train.py", "test_acc", split, leak))


def test_where_the_label_is_the_last_column_no_new_column_is_free() -> None:
    positional = {"cv.py": PATIENTS["cv.py"].replace('df["label"].values', "df.iloc[:, -1].values")}
    load = 'df = pd.read_csv("data/visits.csv")\n'
    assert _refusals(positional, "cv.py", "oof_auc", load, load + 'df["n_visits"] = 1\n') != []


GROUPED = {"forecast.py": FORECAST["forecast.py"].replace(
    '''    df = df.sort_values(["store", "date"]).copy()
    for lag in lags:
        df[f"lag_{lag}"] = df.groupby("store")[TARGET].shift(lag)
    for w in windows:
        df[f"roll_{w}"] = df[TARGET].shift(1).rolling(w).mean()''',
    '''    df = df.sort_values(["store", "date"]).copy()
    g = df.groupby("store")[TARGET]
    for lag in lags:
        df[f"lag_{lag}"] = g.shift(lag)
    for w in windows:
        df[f"roll_{w}"] = g.transform(lambda s: s.shift(1).rolling(w).mean())'''), "conf.yaml": FORECAST["conf.yaml"]}


@pytest.mark.parametrize(("old", "new"), [
    ("g.shift(lag)", "g.shift(-lag)"),
    ("s.shift(1).rolling(w).mean()", "s.rolling(w, center=True).mean()"),
    ('    df["dow"] = df["date"].dt.dayofweek\n',
     '    df["store_mean"] = g.transform("mean")\n    df["dow"] = df["date"].dt.dayofweek\n'),
])
def test_the_label_read_through_a_name_bound_to_it_is_followed(old: str, new: str) -> None:
    """`g = df.groupby("store")["sales"]` then `g.shift(lag)` and `g.transform(lambda s: s.shift(1)...)`: the label
    is read through `g` and the lambda's `s`, which the guard had not followed."""
    assert "g = df.groupby" in GROUPED["forecast.py"]
    assert _refusals(GROUPED, "forecast.py", "cv_mae", old, new) != []


def test_the_past_read_through_a_name_bound_to_the_label_stays_free() -> None:
    assert _refusals(GROUPED, "forecast.py", "cv_mae", "g.shift(lag)", "g.shift(lag + 1)") == []
    assert _refusals(GROUPED, "forecast.py", "cv_mae", "s.shift(1).rolling(w).mean()",
                     "s.shift(1).rolling(w).median()") == []


AUTOGLUON = {"ag_train.py": '''\
import pandas as pd
from autogluon.tabular import TabularPredictor
from sklearn.model_selection import train_test_split

LABEL = "class"
df = pd.read_csv("data/adult.csv")
train, test = train_test_split(df, test_size=0.25, random_state=0)
predictor = TabularPredictor(label=LABEL, eval_metric="roc_auc").fit(train, time_limit=300)
print(f"test_roc_auc={predictor.evaluate(test)['roc_auc']:.4f}")
'''}


def test_a_label_named_by_its_column_is_the_label() -> None:
    """`TabularPredictor(label=LABEL)` names the label by its column: a feature copied from it had passed."""
    assert label_columns([ast.parse(AUTOGLUON["ag_train.py"])]) == {"class"}
    old = 'df = pd.read_csv("data/adult.csv")\n'
    assert _refusals(AUTOGLUON, "ag_train.py", "test_roc_auc", old,
                     old + 'df["is_rich"] = (df[LABEL] == ">50K").astype(int)\n') != []
    assert _refusals(AUTOGLUON, "ag_train.py", "test_roc_auc", old,
                     old + 'df["capital_net"] = df["capital_gain"] - df["capital_loss"]\n') == []
    # a plot's label names no column
    assert label_columns([ast.parse('import matplotlib.pyplot as plt\nplt.plot([1], label="train")\n')]) == set()
