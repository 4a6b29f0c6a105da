"""Supervised fine-tuning of a language model on nightlab's decision steps (TRL's SFTTrainer, nothing custom).

    nightlab export trajectories --format sft -o steps.jsonl          # or --format prompt-completion
    python examples/finetune/sft.py --data steps.jsonl --model Qwen/Qwen2.5-0.5B-Instruct --output out/sft

Every record is one step as the model saw it (the prompt it was sent, or for the builtin policy's steps the prompt
it would have been sent, code included), the `tools` schema, and the move as an OpenAI-style tool call: the builtin
policy's moves distil into the model, and a model's own accepted answers are reinforced. With the
prompt-completion format the loss is on the tool call only. `--min-reward R` keeps the steps whose run earned at
least R (it needs the rewards export: `--format rewards`; its prompt-completion columns train as they are).

Needs `pip install 'nightlab[finetune]'` (trl, transformers, datasets, torch). A model name downloads from the
Hugging Face Hub; a local folder (`save_pretrained`) needs no network.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, required=True, help="a `nightlab export trajectories` JSONL file")
    ap.add_argument("--model", required=True, help="a causal LM: a local folder or a Hub name")
    ap.add_argument("--output", type=Path, required=True, help="where the fine-tuned model is saved")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimiser steps (-1: epochs)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--max-length", type=int, default=None, help="truncate sequences (default: no truncation)")
    ap.add_argument("--min-reward", type=float, default=None, help="rewards export only: keep steps with at least "
                    "this reward")
    ap.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    args = ap.parse_args(argv)

    if not args.data.is_file():
        print(f"sft.py: {args.data}: no such file (write it with `nightlab export trajectories`)", file=sys.stderr)
        return 2

    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    ds = load_dataset("json", data_files=str(args.data), split="train")
    if "reward" in ds.column_names:  # the rewards export: filter, then keep what SFT reads
        if args.min_reward is not None:
            ds = ds.filter(lambda r: r["reward"] is not None and r["reward"] >= args.min_reward)
        ds = ds.select_columns(["prompt", "completion", "tools"])
    elif args.min_reward is not None:
        print("sft.py: --min-reward needs the rewards export (--format rewards)", file=sys.stderr)
        return 2
    if len(ds) == 0:
        print(f"sft.py: {args.data}: no step to train on", file=sys.stderr)
        return 2
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    config = SFTConfig(output_dir=str(args.output), num_train_epochs=args.epochs, max_steps=args.max_steps,
                       per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                       max_length=args.max_length, logging_steps=1, save_strategy="no", report_to="none",
                       use_cpu=args.cpu, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=config, train_dataset=ds, processing_class=tokenizer)
    result = trainer.train()
    trainer.save_model(str(args.output))
    tokenizer.save_pretrained(str(args.output))
    print(json.dumps({"steps": len(ds), "train_loss": result.training_loss, "saved": str(args.output)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
