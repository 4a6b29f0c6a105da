"""Logistic regression by full-batch gradient descent, far too many epochs for its time budget."""
import time

import numpy as np

EPOCHS = 4000

rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 50))
y = (X[:, :5].sum(1) > 0).astype(float)
w = np.zeros(50)
for epoch in range(EPOCHS):
    p = 1 / (1 + np.exp(-X @ w))
    w -= 0.1 * X.T @ (p - y) / len(y)
    time.sleep(0.001)  # an epoch takes at least 1 ms on any machine, so 4000 of them outlast the test's 2 s limit
    if epoch % 200 == 0:
        print(f"epoch {epoch} loss {-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)):.4f}",
              flush=True)
print(f"accuracy={np.mean((X @ w > 0) == y):.4f}")
