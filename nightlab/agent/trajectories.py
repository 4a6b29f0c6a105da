"""Export every agent step as a JSONL record that fine-tuning libraries read directly.

Each record carries the conversational fields TRL's trainers expect: `messages` (SFT), and `prompt` + `completion`
(the prompt-completion form GRPO and reward-weighted training use), plus the step's scalar `reward`, `stage`,
`duration_s` and tree links. Secrets and absolute paths are stripped: keys never leave the machine in an export.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from nightlab.agent.config import ProjectConfig
from nightlab.agent.store import Experiment, Store

SYSTEM = ("You are nightlab, an ML engineering agent. Given the state of an experiment tree, propose the next "
          "experiment as a hypothesis and exact search/replace edits to the training code.")

SECRET_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b(?:ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{12,}"),
    re.compile(r"(?i)\b([A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*)\s*[=:]\s*\S+"),
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
]


def scrub(text: str, root: Path) -> str:
    """Remove secrets and absolute paths (the project root becomes `.`, the home folder `~`)."""
    for pat in SECRET_PATTERNS:
        text = pat.sub(lambda m: (m.group(1) + "=<redacted>") if m.re.groups and m.group(1) and "=" in m.group(0)
                       else "<redacted>", text)
    for value in _secret_values():
        text = text.replace(value, "<redacted>")
    text = text.replace(str(root.resolve()), ".").replace(str(root), ".")
    home = os.path.expanduser("~")
    if home and home != "/":
        text = text.replace(home, "~")
    return re.sub(r"/tmp/[\w.-]+/", "<tmp>/", text)


def _secret_values() -> list[str]:
    from nightlab.sandbox.isolate import is_secret_name

    return [v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 6]


def _state_summary(cfg: ProjectConfig, done: list[Experiment], parent: Experiment | None, base: float | None) -> str:
    lines = [f"Metric: {cfg.metric.name} ({cfg.metric.goal}). Baseline: {base if base is not None else 'unknown'}."]
    if parent is not None:
        lines.append(f"Building on #{parent.id}: {parent.title} -> {parent.metric} ({parent.status}).")
    lines.append("Experiments so far:")
    for e in done[-30:]:
        extra = f" [{e.failure_class}]" if e.failure_class else ""
        lines.append(f"- #{e.id} (parent {e.parent_id}) {e.title}: {e.metric} {e.status}{extra}")
    if parent is not None and parent.diagnosis:
        lines.append(f"Diagnosis of the parent: {parent.diagnosis}")
    return "\n".join(lines)


def export_trajectories(root: Path, cfg: ProjectConfig, store: Store) -> list[dict[str, Any]]:
    """One record per proposed experiment (baseline and seed re-runs are the engine's, not the agent's, steps)."""
    root = Path(root)
    exps = store.experiments()
    by_id = {e.id: e for e in exps}
    base = next((e for e in exps if e.kind == "baseline"), None)
    base_val = base.metric if base else None
    out: list[dict[str, Any]] = []
    for i, e in enumerate(exps):
        if e.kind in ("baseline", "rerun"):
            continue
        parent = by_id.get(e.parent_id) if e.parent_id is not None else None
        state = _state_summary(cfg, [x for x in exps[:i] if x.kind != "rerun"], parent, base_val)
        action = {"title": e.title, "rationale": e.rationale, "expected_effect": e.expected_effect,
                  "kind": e.kind, "edits": e.edits}
        prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": scrub(state, root)}]
        completion = [{"role": "assistant", "content": scrub(json.dumps(action, indent=1), root)}]
        out.append({
            "messages": prompt + completion,
            "prompt": prompt,
            "completion": completion,
            "reward": e.reward,
            "stage": e.stage,
            "duration_s": e.seconds,
            "experiment_id": e.id,
            "parent_id": e.parent_id,
            "status": e.status,
            "metric": e.metric,
            "failure_class": e.failure_class,
            "policy": e.policy,
        })
    return out
