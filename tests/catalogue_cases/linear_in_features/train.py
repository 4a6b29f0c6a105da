# A small CNN on synthetic 8x8 images; its classifier head was sized for 16x16 inputs.
import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


torch.manual_seed(0)
torch.set_num_threads(1)
images = torch.randn(128, 1, 8, 8)
labels = (images.mean(dim=(1, 2, 3)) > 0).long()
model = SmallCNN()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(15):
    loss = F.cross_entropy(model(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"accuracy={(model(images).argmax(1) == labels).float().mean().item():.4f}")
