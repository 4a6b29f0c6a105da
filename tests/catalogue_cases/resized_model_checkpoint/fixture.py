"""The pretrained encoder the repository ships: hidden width 16."""
import os

import torch

torch.manual_seed(2)
enc = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16))
os.makedirs("pretrained", exist_ok=True)
torch.save({"embed.weight": torch.randn(8, 4), **{f"encoder.{k}": v for k, v in enc.state_dict().items()}},
           "pretrained/encoder.pt")
