import urllib.request

import torch


def main():
    # a download at run time: .invalid never resolves (RFC 2606), with or without a network
    urllib.request.urlretrieve("https://data.nightlab-test.invalid/mnist.npz", "mnist.npz")
    x = torch.randn(100, 3)
    print(f"accuracy={float((x[:, 0] > 0).float().mean()):.4f}")


if __name__ == "__main__":
    main()
