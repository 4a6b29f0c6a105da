"""Export the decision steps as JSONL that fine-tuning libraries read directly: one format per file.

Every record is one step of the experience store (experience.py), as the model saw it when the step was decided:

* the prompt: for a language model's step exactly the messages it was sent for the answer that was accepted (a
  corrective turn included); for any other policy's step the messages the LLM policy would have been sent, rendered
  from the state at that moment, the code of the files it edits included. Nothing known only later appears: an
  experiment still running then shows as running, without its result;
* `tools`: the tool schemas of the LLM policy (`propose_experiment`, `fix_failure`) as one JSON string — TRL's
  trainers decode a string `tools` column, and a string keeps the two schemas exact where Arrow would merge their
  fields into one struct with nulls;
* the assistant turn: an OpenAI-style tool call of `propose_experiment` / `fix_failure` with JSON-string
  arguments, for a model's step its own arguments, for the builtin policy's the hypothesis and edits it proposed
  (so its moves distil into a language model).

Formats (`nightlab export trajectories --format F`):

    sft                 {"messages": prompt + [assistant], "tools"}            TRL SFTTrainer (conversational)
    prompt-completion   {"prompt": prompt, "completion": [assistant], "tools"} SFTTrainer (completion-only loss)
    rewards             prompt-completion + the step's reward, its parts, stage, duration, outcome, weight
                        (duration over the mean duration: the duration-aware weight of agent/learn.py), what the
                        reward was judged against (baseline, best_before, noise_floor) and where to replay it
                        (experiment, seed, parent commit): reward-weighted training, offline RL, and the prompts
                        of GRPO, whose completions rollout.py runs and scores (examples/finetune/)

Only steps whose run settled are exported (a refused proposal or a run still going has no outcome yet). Secrets
and absolute paths are stripped: keys never leave the machine in an export.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from nightlab.agent.config import ProjectConfig
from nightlab.agent.experience import PARTS, REFERENCES
from nightlab.agent.states import StepKind
from nightlab.agent.store import Store
from nightlab.sandbox.isolate import is_secret_name

Format = Literal["sft", "prompt-completion", "rewards"]
FORMATS: tuple[Format, ...] = ("sft", "prompt-completion", "rewards")
MIN_SECONDS = 1.0  # as in learn.py: a run's duration counts as at least this

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
    return [v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 6]


def tools_schema() -> list[dict[str, Any]]:
    """The LLM policy's two tools, as it declares them to a model."""
    from nightlab.agent.policy.llm import FIX_TOOL, PROPOSE_TOOL, TOOLS

    return [TOOLS[PROPOSE_TOOL], TOOLS[FIX_TOOL]]


def _message(m: dict[str, Any], root: Path) -> dict[str, Any]:
    """One prompt message, scrubbed, in the OpenAI shape (content always a string)."""
    out: dict[str, Any] = {"role": m.get("role", "user"), "content": scrub(str(m.get("content") or ""), root)}
    if m.get("tool_calls"):
        out["tool_calls"] = [
            {"id": str(c.get("id", "")), "type": "function",
             "function": {"name": str(c["function"]["name"]),
                          "arguments": scrub(_as_json(c["function"].get("arguments")), root)}}
            for c in m["tool_calls"]]
    if m.get("tool_call_id"):
        out["tool_call_id"] = str(m["tool_call_id"])
    return out


def _as_json(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args or {})


def _arguments(step: dict[str, Any], e: Any, tool: str) -> dict[str, Any]:
    """The tool call's arguments: a model's own, else what the policy proposed, in the tool's schema."""
    if step.get("answer"):
        return dict(step["answer"])
    edits = [{"path": x["path"], "search": x["search"], "replace": x["replace"]} for x in e.edits]
    if tool == "fix_failure":
        return {"diagnosis": e.diagnosis or e.rationale or e.title, "edits": edits}
    return {"title": e.title, "rationale": e.rationale, "expected_effect": e.expected_effect, "edits": edits}


def _references(store: Store, e: Any, parent: Any, parts: dict[str, Any]) -> dict[str, Any]:
    """What the step's reward was judged against (baseline, best before, noise floor): as the engine recorded them
    when the run settled, or, for a step recorded before nightlab kept them, the baseline's metric, the parent's
    (what the move built on) and the session's noise floor. A rollout of another completion for the same step
    (rollout.py) is scored against these, so its reward and the recorded one are on the same terms."""
    if all(k in parts for k in REFERENCES):
        return {k: parts[k] for k in REFERENCES}
    base = store.baseline_experiment()
    session = store.session(e.session_id) if e.session_id is not None else None
    return {"baseline": base.metric if base is not None else None,
            "best_before": parent.metric if parent is not None and parent.id != (base.id if base else None)
            else None,
            "noise_floor": (session.noise_floor if session is not None else None) or 0.0}


def export_trajectories(root: Path, cfg: ProjectConfig, store: Store, fmt: Format = "sft") -> list[dict[str, Any]]:
    """One record per settled decision step, in the order the steps were taken."""
    from nightlab.agent.policy.llm import FIX_TOOL, PROPOSE_TOOL

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    root = Path(root)
    tools = json.dumps(tools_schema())
    steps = [s for s in store.steps(settled=True) if s.get("experiment_id")]
    durations = [max(MIN_SECONDS, float(s.get("seconds") or 0.0)) for s in steps]
    mean_d = sum(durations) / len(durations) if durations else 1.0
    out: list[dict[str, Any]] = []
    for step, d in zip(steps, durations, strict=True):
        e = store.find_experiment(int(step["experiment_id"]))
        if e is None or not step.get("messages"):
            continue
        tool = step.get("tool") or (FIX_TOOL if step.get("kind") == StepKind.FIX else PROPOSE_TOOL)
        prompt = [_message(m, root) for m in step["messages"]]
        args = scrub(json.dumps(_arguments(step, e, tool), ensure_ascii=False), root)
        assistant = {"role": "assistant", "content": "", "tool_calls": [
            {"id": f"call_{e.id}", "type": "function", "function": {"name": tool, "arguments": args}}]}
        if fmt == "sft":
            out.append({"messages": [*prompt, assistant], "tools": tools})
            continue
        rec: dict[str, Any] = {"prompt": prompt, "completion": [assistant], "tools": tools}
        if fmt == "rewards":
            parent = store.find_experiment(e.parent_id) if e.parent_id is not None else None
            parts = dict(step.get("reward_parts") or {})
            rec.update({
                "reward": step.get("reward"), "reward_parts": {k: parts.get(k) for k in PARTS},
                **_references(store, e, parent, parts),
                "stage": step.get("stage") or "", "duration_s": step.get("seconds"), "weight": round(d / mean_d, 6),
                "outcome": step.get("outcome") or "", "failure_class": step.get("failure_class") or "",
                "policy": step.get("policy") or "", "kind": step.get("kind") or "", "experiment_id": e.id,
                "seed": e.seed, "parent_id": e.parent_id, "parent_commit": parent.commit_sha if parent else None,
            })
        out.append(rec)
    return out
