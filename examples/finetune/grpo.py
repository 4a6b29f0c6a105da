"""Online RL of a language model on nightlab's own reward: TRL's GRPOTrainer with rollouts as the reward function.

    nightlab export trajectories --format rewards -o steps.jsonl
    python examples/finetune/grpo.py --project . --data steps.jsonl --model out/sft --output out/grpo

Each prompt is a recorded decision step (what the model was, or would have been, sent). GRPO samples
--num-generations completions per prompt; every one is run for real by nightlab.agent.rollout: its tool call
(`propose_experiment` / `fix_failure`, or the same JSON in a ```json block, as the prompt allows) is applied to the
step's parent commit with the engine's own validation, committed in a worktree of a scratch clone of the project,
trained through nightlab's job wrapper and sandbox on a leased slot, read as the engine reads a run (metric, stage
reached, failure class) and scored by the reward module against the references of the step's own reward. A
completion that does not parse or whose edits do not apply scores the penalty of an invalid edit without a run.

The rewards handed to GRPO are duration-weighted advantages within each prompt's group, (r_i − b) · d_i / mean(d)
with b the group's duration-weighted mean reward, so a completion counts for the time its run held a slot and fast,
weak moves are not favoured (`--no-duration` hands the plain rewards instead). They sum to 0 per group, so TRL's
group-mean subtraction keeps them; scale_rewards="none" keeps their scale.

The project is only read: the user's repository, branches and stores are never written (the clone lives in a
temporary folder, removed at the end). Runs take as long as the project's training does: start with few prompts,
a small --num-generations and --max-steps. A model name downloads from the Hugging Face Hub; a local folder needs
no network. Needs `pip install 'nightlab[finetune]'`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REFERENCES = ["parent_commit", "baseline", "best_before", "noise_floor", "seed"]


def _first_record(path: Path) -> dict[str, object]:
    """The file's first JSON record ({} when it has none or is not JSONL), read before any heavy import."""
    with open(path) as f:
        for line in f:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    return {}
                return rec if isinstance(rec, dict) else {}
    return {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--project", type=Path, required=True, help="the nightlab project the steps come from")
    ap.add_argument("--data", type=Path, required=True, help="`nightlab export trajectories --format rewards`")
    ap.add_argument("--model", required=True, help="a causal LM: a local folder or a Hub name")
    ap.add_argument("--output", type=Path, required=True, help="where the trained model is saved")
    ap.add_argument("--num-generations", type=int, default=4, help="completions per prompt (GRPO's group)")
    ap.add_argument("--max-completion-length", type=int, default=1024, help="tokens per completion")
    ap.add_argument("--max-steps", type=int, default=10, help="optimiser steps")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--beta", type=float, default=0.0, help="KL weight against the starting model (0: none)")
    ap.add_argument("--kind", choices=["propose", "fix", "all"], default="all", help="which steps to train on")
    ap.add_argument("--no-duration", action="store_true", help="plain rewards, not duration-weighted advantages")
    ap.add_argument("--unsafe-no-sandbox", action="store_true", help="run the rollouts with layer 0 only")
    ap.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    args = ap.parse_args(argv)

    if not args.data.is_file():
        print(f"grpo.py: {args.data}: no such file (write it with `nightlab export trajectories --format rewards`)",
              file=sys.stderr)
        return 2
    first = _first_record(args.data)
    missing = [c for c in ["prompt", *REFERENCES] if c not in first]
    if missing:
        print(f"grpo.py: {args.data}: not a rewards export (no {', '.join(missing)}); write it with "
              "`nightlab export trajectories --format rewards`", file=sys.stderr)
        return 2

    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from nightlab.agent.config import load_config
    from nightlab.agent.rollout import Rollout, RolloutReward, Rollouts, Task
    from nightlab.errors import NightlabError

    ds = load_dataset("json", data_files=str(args.data), split="train")
    ds = ds.filter(lambda r: bool(r["parent_commit"]) and (args.kind == "all" or r["kind"] == args.kind))
    ds = ds.select_columns(["prompt", *REFERENCES])
    if len(ds) == 0:
        print(f"grpo.py: {args.data}: no step to train on", file=sys.stderr)
        return 2
    try:
        rollouts = Rollouts(args.project, load_config(args.project), unsafe_no_sandbox=args.unsafe_no_sandbox)
    except NightlabError as err:
        print(f"grpo.py: {err}", file=sys.stderr)
        return 2
    tally = {"rollouts": 0, "ran": 0, "invalid": 0, "reward_sum": 0.0}

    def counted(task: Task, r: Rollout) -> None:
        tally["rollouts"] += 1
        tally["ran" if r.experiment_id is not None else "invalid"] += 1
        tally["reward_sum"] += r.reward
        print(f"rollout: {r.stage or 'not started'}, reward {r.reward:.3f}, {r.seconds:.1f} s"
              + (f", {args.project} metric {r.metric:.6g}" if r.metric is not None else "")
              + (f" ({r.error.splitlines()[0][:100]})" if r.error else ""), flush=True)

    reward = RolloutReward(rollouts, duration_aware=not args.no_duration, on_rollout=counted)
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
        config = GRPOConfig(output_dir=str(args.output), max_steps=args.max_steps, learning_rate=args.lr,
                            per_device_train_batch_size=args.num_generations, num_generations=args.num_generations,
                            max_completion_length=args.max_completion_length, beta=args.beta,
                            scale_rewards="none", logging_steps=1, save_strategy="no", report_to="none",
                            use_cpu=args.cpu, dataloader_num_workers=0)
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=ds,
                              processing_class=tokenizer)
        trainer.train()
        trainer.save_model(str(args.output))
        tokenizer.save_pretrained(str(args.output))
    finally:
        rollouts.close()
    n = max(tally["rollouts"], 1)
    print(json.dumps({"prompts": len(ds), "rollouts": tally["rollouts"], "ran": tally["ran"],
                      "invalid": tally["invalid"], "mean_reward": round(tally["reward_sum"] / n, 4),
                      "saved": str(args.output)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
