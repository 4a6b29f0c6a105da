import argparse
import os

import torch


def main():
    p = argparse.ArgumentParser()
    # a default output folder in the author's home: fine on their machine, read-only in a job
    p.add_argument("--out", default=os.path.expanduser("~/nightlab-case-outputs/run1"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    x = torch.randn(100, 3)
    torch.save(x, os.path.join(args.out, "x.pt"))
    print(f"accuracy={float((x[:, 0] > 0).float().mean()):.4f}")


if __name__ == "__main__":
    main()
