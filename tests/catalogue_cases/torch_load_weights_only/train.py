"""Logistic regression on the cached arrays."""
import argparse

import torch

from prepare import CACHE, main as prepare


def load(path):
    blob = torch.load(path)
    return torch.from_numpy(blob["x"]), torch.from_numpy(blob["y"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    prepare()
    x, y = load(CACHE)
    model = torch.nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(args.epochs):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model(x).argmax(1) == y).float().mean().item()
    print(f"accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
