import torch
import torch.nn as nn


class FineTuner:
    """Fine-tune the pretrained classifier on new data."""

    def __init__(self, checkpoint="checkpoints/pretrained.pt"):
        self.model = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 2))
        ckpt = torch.load(checkpoint)
        self.model.load_state_dict(ckpt["state_dict"])
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-3)

    def step(self, x, y):
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(300, 6)
    y = (x[:, 0] - x[:, 3] > 0).long()
    tuner = FineTuner()
    for _ in range(50):
        tuner.step(x, y)
    print(f"accuracy={(tuner.model(x).argmax(1) == y).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
