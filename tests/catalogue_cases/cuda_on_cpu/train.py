"""A small CNN written for a GPU box."""
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = {"device": "cuda", "lr": 0.01, "epochs": 3, "batch_size": 32}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.flatten(1))


class Trainer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.model = Net().cuda()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg["lr"], momentum=0.9)

    def run(self, images, labels):
        for epoch in range(self.cfg["epochs"]):
            for i in range(0, len(images), self.cfg["batch_size"]):
                xb = images[i:i + self.cfg["batch_size"]].cuda(non_blocking=True)
                yb = labels[i:i + self.cfg["batch_size"]].to(self.cfg["device"])
                loss = F.cross_entropy(self.model(xb), yb)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
            torch.cuda.synchronize()
            print(f"epoch {epoch} loss {loss.item():.4f}")

    @torch.no_grad()
    def evaluate(self, images, labels):
        logits = self.model(images.to(self.cfg["device"]))
        return (logits.argmax(1).cpu() == labels).float().mean().item()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images = torch.randn(256, 1, 8, 8)
    labels = (images.mean(dim=(1, 2, 3)) > 0).long()
    trainer = Trainer(CONFIG)
    trainer.run(images, labels)
    print(f"accuracy={trainer.evaluate(images, labels):.4f}")


if __name__ == "__main__":
    main()
