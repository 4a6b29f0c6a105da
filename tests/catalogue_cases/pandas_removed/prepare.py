"""Writes the whitespace-separated table the training reads (a file the repository's data step would produce)."""
import numpy as np

rng = np.random.default_rng(0)
X = rng.normal(size=(300, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
with open("table.txt", "w") as f:
    f.write("f0 f1 f2 f3 label\n")
    for i, (row, label) in enumerate(zip(X, y)):
        cells = ["nan" if (i % 37 == 5 and j == 2) else f"{v:.4f}" for j, v in enumerate(row)]
        f.write(" ".join(cells) + f" {label}\n")
