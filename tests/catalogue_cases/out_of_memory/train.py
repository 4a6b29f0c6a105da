"""A wide random-feature classifier: cheap to compute, hungry for activation memory."""
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = {"batch_size": 2048, "width": 32768, "lr": 0.05, "epochs": 1}


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(8192, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(8, CONFIG["width"]), nn.ReLU(), nn.Linear(CONFIG["width"], 2))
    opt = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"])
    for epoch in range(CONFIG["epochs"]):
        for i in range(0, len(x), CONFIG["batch_size"]):
            xb, yb = x[i:i + CONFIG["batch_size"]], y[i:i + CONFIG["batch_size"]]
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            print(f"step {i // CONFIG['batch_size']} loss {loss.item():.4f}")
    with torch.no_grad():
        acc = sum((model(x[i:i + 512]).argmax(1) == y[i:i + 512]).sum().item() for i in range(0, len(x), 512))
    print(f"accuracy={acc / len(x):.4f}")


if __name__ == "__main__":
    main()
