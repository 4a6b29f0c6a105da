"""A classifier with a step schedule and a plateau schedule, both asked to print the rate (verbose=True)."""
import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(512, 8)
Y = (X[:, :4].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
step = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5, verbose=True)
plateau = ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=5, verbose=True)
for epoch in range(30):
    loss = nn.functional.cross_entropy(model(X), Y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    step.step()
    plateau.step(loss.item())
with torch.no_grad():
    print(f"accuracy={(model(X).argmax(1) == Y).float().mean().item():.4f}")
