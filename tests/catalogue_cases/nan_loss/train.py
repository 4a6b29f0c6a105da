import math

import torch

LR = 5.0
STEPS = 60


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 1.0
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for step in range(STEPS):
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            print(f"step {step} loss {loss.item():.4f}")
    with torch.no_grad():
        err = torch.nn.functional.mse_loss(model(x).squeeze(1), y).item()
    acc = math.exp(-err / 100) if math.isfinite(err) else float("nan")
    print(f"accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
