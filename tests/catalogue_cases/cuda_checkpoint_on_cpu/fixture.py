"""A checkpoint as a GPU machine writes it: every storage tagged cuda:0 (made here by tagging, no GPU needed)."""
import os

import torch
import torch.serialization as ser

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
os.makedirs("weights", exist_ok=True)
tag = ser.location_tag
ser.location_tag = lambda storage: "cuda:0"
torch.save(net.state_dict(), "weights/init.pt")
ser.location_tag = tag
