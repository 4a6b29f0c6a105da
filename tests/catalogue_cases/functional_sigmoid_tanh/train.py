import torch
import torch.nn as nn
import torch.nn.functional as F


class GatedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 16)
        self.g = nn.Linear(5, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        return self.out(F.tanh(self.a(x)) * F.sigmoid(self.g(x))).squeeze(1)


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(256, 5)
    y = (x[:, 0] > x[:, 1]).float()
    net = GatedNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"accuracy={((net(x) > 0).float() == y).float().mean().item():.4f}")
