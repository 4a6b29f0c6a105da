# Perceptron on synthetic data, written for numpy 1.19
import numpy as np

rng = np.random.RandomState(0)
X = rng.randn(300, 5).astype(np.float)
w_true = rng.randn(5)
y = (X @ w_true > 0).astype(np.int)
n_features = np.product(X.shape[1:])
w = np.zeros(n_features, dtype=np.float_)
best = -np.Inf
for epoch in range(20):
    for xi, yi in zip(X, y):
        pred = int(xi @ w > 0)
        w += 0.1 * (yi - pred) * xi
    acc = float(np.mean((X @ w > 0).astype(np.int) == y))
    best = max(best, acc)
print(f"accuracy={acc:.4f}")
