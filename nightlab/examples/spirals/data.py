"""Fixed data and evaluation for the spirals demo. Protected: nightlab hashes this file around every run."""
import numpy as np
import torch


def load_data(n=2400, turns=2.5, noise=0.25):
    """Two interleaved spirals in 2-D, split 70/30 with a fixed generator (the same for every run)."""
    rng = np.random.default_rng(1234)
    t = np.sqrt(rng.random(n)) * turns * 2 * np.pi
    label = rng.integers(0, 2, n)
    r = t / (turns * 2 * np.pi) * 6.0
    angle = t + label * np.pi
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) + rng.normal(0, noise, (n, 2))
    x = (x * 2.0 + 5.0).astype(np.float32)  # raw units, as sensors would give them: not standardised
    cut = int(0.7 * n)
    to_t = lambda a, dt: torch.tensor(a, dtype=dt)
    return (to_t(x[:cut], torch.float32), to_t(label[:cut], torch.long),
            to_t(x[cut:], torch.float32), to_t(label[cut:], torch.long))


@torch.no_grad()
def evaluate(model, x, y):
    """Accuracy on the held-out 30%; a row of non-finite logits counts as wrong."""
    model.eval()
    logits = model(x)
    ok = (logits.argmax(1) == y) & torch.isfinite(logits).all(1)
    return ok.float().mean().item()
