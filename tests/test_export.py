"""`nightlab export trajectories`: one format per file, the prompt as it was (or would have been) sent then, the
move as an OpenAI-style tool call; it loads with `datasets` and trains in TRL's SFTTrainer as it is."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightlab.agent.engine import open_store
from nightlab.agent.trajectories import scrub

TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content %}{{ m.content }}{% endif %}"
    "{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{\"name\": \"{{ c.function.name }}\", "
    "\"arguments\": {{ c.function.arguments }}}</tool_call>{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _export(root: Path, out: Path, fmt: str) -> list[dict]:  # type: ignore[type-arg]
    env = {**os.environ, "HF_TOKEN": "hf_supersecretvalue123"}
    p = subprocess.run([sys.executable, "-m", "nightlab", "export", "trajectories", "--format", fmt, "-o", str(out)],
                       cwd=root, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert str(root) not in text and "/tmp/" not in text and "hf_supersecretvalue123" not in text
    return [json.loads(line) for line in text.splitlines()]


def _tiny_tokenizer(texts: list[str]):  # type: ignore[no-untyped-def]
    """A byte-level BPE of 400 tokens trained here on the exported text, with a tiny chat template (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>")
    hf.chat_template = TEMPLATE
    return hf


def test_export_formats_load_and_train_in_trl(tiny_project: Path, tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="the finetune extra (trl, transformers, datasets) is not installed")
    run = [sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "5"]
    assert subprocess.run(run, cwd=tiny_project, capture_output=True).returncode == 0
    store = open_store(tiny_project)
    steps = [s for s in store.steps() if s["settled_t"] is not None]
    assert steps, "the session decided nothing"
    sft = _export(tiny_project, tmp_path / "sft.jsonl", "sft")
    pc = _export(tiny_project, tmp_path / "pc.jsonl", "prompt-completion")
    rw = _export(tiny_project, tmp_path / "rewards.jsonl", "rewards")
    assert len(sft) == len(pc) == len(rw) == len(steps)
    assert all(set(r) == {"messages", "tools"} for r in sft)
    assert all(set(r) == {"prompt", "completion", "tools"} for r in pc)
    for r, s in zip(rw, steps, strict=True):
        e = store.experiment(s["experiment_id"])
        assert r["experiment_id"] == e.id and r["reward"] == e.reward == s["reward"] and r["stage"] == e.stage
        assert r["duration_s"] == e.seconds and r["weight"] > 0 and r["parent_commit"]
        assert r["prompt"] == [{"role": m["role"], "content": scrub(m["content"], tiny_project)}
                               for m in s["messages"]]
        call = r["completion"][0]["tool_calls"][0]
        assert r["completion"][0]["role"] == "assistant"
        assert call["type"] == "function" and call["function"]["name"] == "propose_experiment"
        args = json.loads(call["function"]["arguments"])
        assert args["title"] == e.title and args["edits"] == e.edits
        assert "LR = " in r["prompt"][1]["content"], "the prompt carries the code"
    assert [t["function"]["name"] for t in json.loads(sft[0]["tools"])] == ["propose_experiment", "fix_failure"]

    from datasets import load_dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    for name, rows in (("sft", sft), ("pc", pc)):
        ds = load_dataset("json", data_files=str(tmp_path / f"{name}.jsonl"), split="train")
        assert len(ds) == len(rows)
        texts = [json.dumps(x) for x in rows]
        tok = _tiny_tokenizer(texts)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                             max_position_embeddings=8192, pad_token_id=tok.pad_token_id))
        args = SFTConfig(output_dir=str(tmp_path / f"out-{name}"), max_steps=1, per_device_train_batch_size=2,
                         report_to="none", save_strategy="no", use_cpu=True, max_length=None, logging_steps=1,
                         dataloader_num_workers=0)
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(min(2, len(rows)))])
        trained = tok.decode([t for t, lab in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist(),
                                                  strict=True) if lab != -100])
        first = rows[0]
        title = json.loads((first.get("messages") or first.get("completion"))[-1]["tool_calls"][0]["function"]
                           ["arguments"])["title"]
        assert "propose_experiment" in trained and title in trained
        if name == "pc":  # completion-only loss: the prompt is context, never a target
            assert "research engineer of nightlab" not in trained
        out = trainer.train()
        assert math.isfinite(out.training_loss)
