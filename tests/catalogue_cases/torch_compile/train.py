"""A small classifier trained the PyTorch 2 way: the model and the loss compiled with torch.compile.

On a machine without a working C++ compiler (the test points CXX nowhere) inductor cannot build the kernels and the
first forward pass fails; without torch.compile the same model trains.
"""
import torch
from torch import nn

compile = True  # use PyTorch 2.0 to compile the model to be faster
EPOCHS = 30
LR = 0.1

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(512, 8)
Y = (X[:, :4].sum(1) > 0).long()


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        return self.net(x)


@torch.compile
def loss_fn(logits, y):
    return nn.functional.cross_entropy(logits, y)


model = MLP()
if compile:
    print("compiling the model... (takes a ~minute)")
    model = torch.compile(model)
opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
for epoch in range(EPOCHS):
    loss = loss_fn(model(X), Y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"epoch {epoch} loss {loss.item():.4f}")
with torch.no_grad():
    print(f"accuracy={(model(X).argmax(1) == Y).float().mean().item():.4f}")
