"""Cache the synthetic dataset as numpy arrays (the training script loads the cache)."""
import numpy as np
import torch

CACHE = "data/cache.pt"


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    import os
    os.makedirs("data", exist_ok=True)
    torch.save({"x": x, "y": y, "meta": {"source": "synthetic"}}, CACHE)


if __name__ == "__main__":
    main()
