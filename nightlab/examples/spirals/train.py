"""Classify two interleaved spirals with a small MLP: the nightlab demo project.

Prints `val_acc=<value>` at the end (held-out accuracy, higher is better).
"""
import argparse
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import evaluate, load_data

# hyperparameters
LEARNING_RATE = 0.003
HIDDEN = 16
EPOCHS = 12
BATCH_SIZE = 64


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.out(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(args.seed)

    x_train, y_train, x_val, y_val = load_data()
    model = MLP(HIDDEN)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(0, len(x_train), BATCH_SIZE):
            idx = perm[i:i + BATCH_SIZE]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch:3d}  train_loss {total / len(x_train):.4f}  val_acc {evaluate(model, x_val, y_val):.4f}")
    print(f"val_acc={evaluate(model, x_val, y_val):.4f}")


if __name__ == "__main__":
    main()
