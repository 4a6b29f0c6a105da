"""Six-class synthetic tabular classification (sklearn make_classification), an argparse-configured MLP.

Prints `val accuracy: <value>` at the end (20% held-out split, higher is better).
"""
import argparse

import torch
import torch.nn as nn
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split


def get_args():
    p = argparse.ArgumentParser()
    p.add_argument("--d-hidden", type=int, default=24)
    p.add_argument("--n-layers", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=0.02)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = get_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    X, y = make_classification(n_samples=4000, n_features=30, n_informative=14, n_redundant=6, n_classes=6,
                               n_clusters_per_class=2, class_sep=0.9, random_state=3)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=0)
    Xtr, Xva = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(Xva, dtype=torch.float32)
    ytr, yva = torch.tensor(ytr), torch.tensor(yva)
    layers, d = [], Xtr.shape[1]
    for _ in range(args.n_layers):
        layers += [nn.Linear(d, args.d_hidden), nn.ReLU()]
        d = args.d_hidden
    net = nn.Sequential(*layers, nn.Linear(d, 6))
    opt = torch.optim.SGD(net.parameters(), lr=args.learning_rate, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(Xtr))
        tot = 0.0
        for i in range(0, len(Xtr), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = loss_fn(net(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        print(f"epoch {epoch} loss {tot / len(Xtr):.4f}")
    net.eval()
    with torch.no_grad():
        acc = (net(Xva).argmax(1) == yva).float().mean().item()
    print(f"val accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()
