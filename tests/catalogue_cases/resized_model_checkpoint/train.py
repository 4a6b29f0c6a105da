import torch
import torch.nn as nn

HIDDEN = 16
LR = 0.01
EPOCHS = 40


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.embed = nn.Linear(4, 8, bias=False)
        self.encoder = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.head(torch.relu(self.encoder(self.embed(x))))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(300, 4)
    y = (x[:, 0] * x[:, 1] > 0).long()
    model = Model(HIDDEN)
    model.load_state_dict(torch.load("pretrained/encoder.pt"), strict=False)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for epoch in range(EPOCHS):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"accuracy={(model(x).argmax(1) == y).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
