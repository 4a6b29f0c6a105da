import torch
import wandb


def main():
    wandb.init(project="demo", mode="offline")
    x = torch.randn(100, 3)
    print(f"accuracy={float((x[:, 0] > 0).float().mean()):.4f}")


if __name__ == "__main__":
    main()
