import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
x = torch.randn(256, 10)
y = (x[:, :3].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
running = 0.0
for epoch in range(30):
    out = model(x)
    loss = criterion(out, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    running += loss.data[0]
    if epoch % 10 == 0:
        print("epoch %d loss %.4f" % (epoch, loss.data[0]))
acc = (model(x).argmax(1) == y).float().mean()
print(f"accuracy={acc.item():.4f}")
