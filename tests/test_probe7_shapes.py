"""Shapes of a seventh probe of code no one here wrote: a project launched by `make train`, an RL script with a seed
for its evaluation episodes beside the training's, accelerate's `gather_for_metrics`, tf.data's take/skip split,
PyG's node masks, torchmetrics collections, a recommender's top-K, mmpretrain's `label_smooth_val`."""

from __future__ import annotations

from nightlab.agent.seeding import SeedRoute, plan_seeding

MAKEFILE = {
    "Makefile": "PY ?= python\nLR ?= 3e-4\n\n.PHONY: train\n\ntrain:\n\t$(PY) -m src.train --lr $(LR) --epochs 5\n",
    "src/__init__.py": "",
    "src/train.py": '''\
import argparse

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        loss = model(torch.randn(32, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"val_loss={loss.item():.4f}")


if __name__ == "__main__":
    main()
''',
}


def test_a_seed_option_make_cannot_pass_is_changed_in_the_code_not_silently_kept() -> None:
    """`make train` runs the script through its recipe: `--seed=N` cannot be appended to `make train`, and re-runs
    had been planned as seeded while every one ran the identical command (the rewrite failed and was swallowed)."""
    plan = plan_seeding("make train", lambda p: MAKEFILE.get(p, ""), lambda p: p in MAKEFILE, sorted(MAKEFILE),
                        "val_loss")
    assert plan.route is SeedRoute.CODE, plan.how
    assert "cannot be rewritten to pass --seed" in plan.how and "Makefile" in plan.how
    edits = plan.edits(lambda p: MAKEFILE[p], 3, 0)
    assert list(edits) == ["src/train.py"]
    assert 'p.add_argument("--seed", type=int, default=3)' in edits["src/train.py"]
    assert plan.command("make train", 3, 0) == "make train"
    # with no seed in the code at all, it says so rather than claim a route
    bare = {**MAKEFILE, "src/train.py": MAKEFILE["src/train.py"].replace(
        '    p.add_argument("--seed", type=int, default=0)\n', "").replace("    torch.manual_seed(args.seed)\n", "")}
    plan = plan_seeding("make train", lambda p: bare.get(p, ""), lambda p: p in bare, sorted(bare), "val_loss")
    assert plan.route is SeedRoute.NONE


RL = {"train_ppo.py": '''\
import argparse

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

parser = argparse.ArgumentParser()
parser.add_argument("--env-id", default="CartPole-v1")
parser.add_argument("--learning-rate", type=float, default=3e-4)
parser.add_argument("--n-eval-episodes", type=int, default=20)
parser.add_argument("--eval-seed", type=int, default=10_000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = make_vec_env(args.env_id, n_envs=4, seed=args.seed)
eval_env = gym.make(args.env_id)
eval_env.reset(seed=args.eval_seed)
model = PPO("MlpPolicy", env, learning_rate=args.learning_rate, seed=args.seed)
model.learn(total_timesteps=50_000)
mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.n_eval_episodes)
print(f"mean_reward={mean_reward:.2f}")
'''}


def test_re_runs_vary_the_training_seed_not_the_evaluation_s() -> None:
    """`--eval-seed` comes first in the file; varying it changes which episodes are scored (the measurement) and
    leaves the training as it was."""
    plan = plan_seeding("python train_ppo.py", lambda p: RL.get(p, ""), lambda p: p in RL, sorted(RL), "mean_reward")
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--seed", plan.how
    assert plan.command("python train_ppo.py", 2, 0) == "python train_ppo.py --seed=2"
