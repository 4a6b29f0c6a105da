"""Mixed precision training as written for torch 1.x."""
import torch
import torch.nn as nn
from torch.cuda.amp import GradScaler


def train(model, x, y, epochs=30):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = GradScaler(enabled=torch.cuda.is_available())
    for _ in range(epochs):
        with torch.cuda.amp.autocast(enabled=torch.cuda.is_available()):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(200, 6)
    y = (x.sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    train(model, x, y)
    print(f"accuracy={(model(x).argmax(1) == y).float().mean().item():.4f}")


main()
