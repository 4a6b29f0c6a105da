"""examples/finetune/: SFT on the export and GRPO with nightlab's rollouts as the online reward, run end to end on the
CPU with a tiny randomly initialised model and tokenizer built here (no download)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_export import _tiny_tokenizer
from test_rollout import _untouchable

from nightlab.agent.config import load_config
from nightlab.agent.engine import open_store
from nightlab.agent.trajectories import export_trajectories

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "finetune"


def _tiny_model(texts: list[str], dest: Path) -> Path:
    """A one-layer Llama with a 400-token BPE trained on the export's text, saved where from_pretrained finds it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tiny_tokenizer(texts)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=8192, pad_token_id=tok.pad_token_id,
                                         eos_token_id=tok.eos_token_id))
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def _nl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def _recipe(script: str, *args: str) -> Callable[[], int]:
    """The recipe's main, called in this process (trl and transformers are imported once for the whole test)."""
    spec = importlib.util.spec_from_file_location(f"recipe_{Path(script).stem}", RECIPE / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda: int(module.main(list(args)))


def _last_json(out: str) -> dict[str, Any]:
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_sft_then_grpo_with_rollouts_on_a_tiny_model(tiny_project: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl", reason="the finetune extra (trl, transformers, datasets) is not installed")
    _nl(tiny_project, "run", "--mode", "autonomous", "--budget", "4")
    sft, rewards = tmp_path / "sft.jsonl", tmp_path / "rewards.jsonl"
    store = open_store(tiny_project)  # what `nightlab export trajectories` writes (its CLI: test_export.py)
    for path, fmt in ((sft, "sft"), (rewards, "rewards")):
        path.write_text("".join(json.dumps(r) + "\n" for r in export_trajectories(
            tiny_project, load_config(tiny_project), store, fmt)))  # type: ignore[arg-type]
    store.close()
    steps = len(rewards.read_text().splitlines())
    assert steps >= 1
    model = _tiny_model(sft.read_text().splitlines(), tmp_path / "tiny")
    before = _untouchable(tiny_project)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()

    assert _recipe("sft.py", "--data", str(sft), "--model", str(model), "--output", str(tmp_path / "sft-out"),
                   "--max-steps", "1", "--cpu")() == 0
    out = _last_json(capsys.readouterr().out)
    assert out["steps"] == steps and out["train_loss"] > 0
    assert (tmp_path / "sft-out" / "config.json").is_file()

    assert _recipe("grpo.py", "--project", str(tiny_project), "--data", str(rewards), "--model",
                   str(tmp_path / "sft-out"), "--output", str(tmp_path / "grpo-out"), "--num-generations", "2",
                   "--max-completion-length", "12", "--max-steps", "1", "--cpu")() == 0
    out = _last_json(capsys.readouterr().out)
    # one optimiser step: one group of two completions, each scored through a rollout (a random model's text is
    # no tool call: scored as an invalid edit, without a run)
    assert out["prompts"] == steps and out["rollouts"] == 2 and out["ran"] + out["invalid"] == 2
    assert out["mean_reward"] < 0
    assert (tmp_path / "grpo-out" / "config.json").is_file()
    assert _untouchable(tiny_project) == before, "the recipe wrote into the user's repository or stores"


def _script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RECIPE / script), *args], capture_output=True, text=True)


def test_the_recipes_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    p = _script("sft.py", "--data", str(tmp_path / "nope.jsonl"), "--model", "x", "--output", str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no such file" in p.stderr
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}], "tools": "[]"}) + "\n")
    p = _script("grpo.py", "--project", str(tmp_path), "--data", str(sft), "--model", "x", "--output",
                str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "not a rewards export" in p.stderr
