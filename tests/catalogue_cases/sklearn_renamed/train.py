import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main():
    rng = np.random.default_rng(0)
    num = rng.normal(size=(400, 3))
    cat = rng.integers(0, 4, size=(400, 1))
    X = np.hstack([num, cat])
    y = ((num[:, 0] > 0) ^ (cat[:, 0] == 2)).astype(int)
    prep = ColumnTransformer([("num", StandardScaler(), [0, 1, 2]),
                              ("cat", OneHotEncoder(sparse=False, handle_unknown="ignore"), [3])])
    clf = make_pipeline(prep, LogisticRegression(max_iter=500))
    clf.fit(X[:300], y[:300])
    print(f"accuracy={clf.score(X[300:], y[300:]):.4f}")


if __name__ == "__main__":
    main()
