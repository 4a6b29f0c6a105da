import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(0)
X = rng.normal(size=(300, 4))
y = (X[:, 0] - X[:, 2] > 0).astype(int)
history = pd.DataFrame(columns=["C", "accuracy"])
for C in (0.01, 0.1, 1.0):
    clf = LogisticRegression(C=C).fit(X[:200], y[:200])
    row = {"C": C, "accuracy": clf.score(X[200:], y[200:])}
    history = history.append(row, ignore_index=True)
print(history)
print(f"accuracy={history['accuracy'].max():.4f}")
