"""A classifier whose gradient-norm helper was copied from an old codebase: it imports `inf` from torch._six."""
import torch
from torch import nn
from torch._six import inf

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(512, 8)
Y = (X[:, :4].sum(1) > 0).long()


def grad_norm(parameters, norm_type=2.0):
    grads = [p.grad for p in parameters if p.grad is not None]
    if norm_type == inf:
        return max(g.abs().max() for g in grads)
    return torch.norm(torch.stack([torch.norm(g, norm_type) for g in grads]), norm_type)


model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(30):
    loss = nn.functional.cross_entropy(model(X), Y)
    opt.zero_grad()
    loss.backward()
    print(f"epoch {epoch} loss {loss.item():.4f} grad_norm {grad_norm(model.parameters()):.3f}")
    opt.step()
with torch.no_grad():
    print(f"accuracy={(model(X).argmax(1) == Y).float().mean().item():.4f}")
