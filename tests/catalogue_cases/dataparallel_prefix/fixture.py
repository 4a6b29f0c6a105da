"""A checkpoint saved from an nn.DataParallel-wrapped model, as multi-GPU training scripts save them."""
import os

import torch

torch.manual_seed(1)
net = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(6, 24), torch.nn.ReLU(), torch.nn.Linear(24, 2)))
os.makedirs("checkpoints", exist_ok=True)
torch.save({"state_dict": net.state_dict(), "epoch": 10}, "checkpoints/pretrained.pt")
