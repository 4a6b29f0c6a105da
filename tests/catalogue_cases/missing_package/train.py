import torch
import comet_ml


def main():
    experiment = comet_ml.Experiment(project_name="demo")
    x = torch.randn(100, 3)
    print(f"accuracy={float((x[:, 0] > 0).float().mean()):.4f}")
    experiment.end()


if __name__ == "__main__":
    main()
