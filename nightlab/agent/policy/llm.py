"""The `llm` policy: a language model proposes hypotheses, edits arbitrary training code and debugs failed runs.

Any provider litellm supports works (hosted APIs, Ollama, vLLM, any OpenAI-compatible `api_base`). litellm is
imported only on the first model call, so `nightlab --help` and the builtin policy never pay for it, and it is set
up not to reach the network on its own (local cost map, no telemetry, no callbacks).

The edit protocol is a tool call (`propose_experiment` / `fix_failure`); models without tool calling may answer with
the same JSON object in a fenced ```json block. Every answer is validated with the shared `apply_edits` before it is
returned; an invalid answer gets one corrective retry that quotes the error, then the step fails with `PolicyError`.

Keys: read from the environment only (the variable named by `[llm] api_key_env`, else litellm's provider default such
as OPENAI_API_KEY), handed to litellm per call, and scrubbed from every message this module produces.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from nightlab.agent.config import LLMConfig
from nightlab.agent.edits import apply_edits
from nightlab.agent.memory import format_memory, is_repeat, settled
from nightlab.agent.policy import catalogue
from nightlab.agent.policy.base import Abandon, PolicyBase
from nightlab.agent.policy.decision import FIX, PROPOSE, Decision
from nightlab.agent.policy.features import state_features
from nightlab.agent.proposal import Edit, ExperimentView, PolicyContext, Proposal
from nightlab.agent.states import Kind
from nightlab.errors import EditError, NightlabError

log = logging.getLogger(__name__)

PROPOSE_TOOL = "propose_experiment"
FIX_TOOL = "fix_failure"

_EDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "repo-relative path of an editable file"},
        "search": {"type": "string", "description": "text copied exactly from the file; it must occur exactly once "
                                                    "(empty only to create a new file)"},
        "replace": {"type": "string", "description": "the text that replaces it"},
    },
    "required": ["path", "search", "replace"],
}
TOOLS: dict[str, dict[str, Any]] = {
    PROPOSE_TOOL: {"type": "function", "function": {
        "name": PROPOSE_TOOL,
        "description": "Propose ONE experiment: a hypothesis and the exact search/replace edits that test it.",
        "parameters": {"type": "object", "properties": {
            "title": {"type": "string", "description": "one line, e.g. 'raise the learning rate to 3e-3'"},
            "rationale": {"type": "string", "description": "why this should improve the metric, citing the results"},
            "expected_effect": {"type": "string", "description": "e.g. 'val_loss -0.05'"},
            "edits": {"type": "array", "items": _EDIT_SCHEMA, "minItems": 1},
        }, "required": ["title", "rationale", "expected_effect", "edits"]},
    }},
    FIX_TOOL: {"type": "function", "function": {
        "name": FIX_TOOL,
        "description": "Repair a failed run: say what went wrong and give the edits that fix it "
                       "(an empty list when no code change can fix it; the branch is then abandoned).",
        "parameters": {"type": "object", "properties": {
            "diagnosis": {"type": "string", "description": "what went wrong and why, in one or two sentences"},
            "edits": {"type": "array", "items": _EDIT_SCHEMA},
        }, "required": ["diagnosis", "edits"]},
    }},
}

SYSTEM_PROMPT = """\
You are the research engineer of nightlab, an agent that improves a machine-learning training program one \
experiment at a time. Each step you either propose ONE new experiment or repair ONE failed run. A harness applies \
your edits on a fresh git branch, runs the training command, parses the metric `{metric}` ({goal}) from the \
program's own output and reports back. You never measure or report the metric yourself.

## How to answer
- New experiment: call the tool `propose_experiment` with {{"title", "rationale", "expected_effect", "edits"}}.
- Failed run: call the tool `fix_failure` with {{"diagnosis", "edits"}}; an empty edits list means no code change \
can fix it, and the branch is abandoned.
- If you cannot call tools, answer with exactly one fenced ```json block holding that same object, and nothing else.
- Each edit is {{"path": "<editable file>", "search": "<exact text from the file>", "replace": "<new text>"}}.

## Rules
1. Edit only the editable files listed in the message. Never touch evaluation code, data files, how the metric is \
computed or printed, the data split, the settings that choose or size the evaluation (`eval_iters`, \
`limit_val_batches`, a validation fraction, the number of cross-validation folds; in a file or on the command \
line), anything listed as protected, or a \
config key only protected code reads (a data split's seed); and never train on the held-out rows: such edits are \
refused.
2. `search` must be copied character for character from the file as shown (indentation included) and must occur \
exactly once in it; add neighbouring lines when a line is not unique. Keep blocks short. An empty `search` creates a \
new file.
3. One hypothesis per experiment: the smallest change that tests it, no unrelated clean-ups.
4. Never repeat a hypothesis listed under "Already tried"; build on what worked and learn from what did not.
5. A run must finish within the time limit per run.
6. Do not game the evaluation: no test data in training, no changes to what or how the metric measures.
"""

BRIEF_CHARS = 8_000
LOG_TAIL_CHARS = 6_000
TREE_ROWS = 40
MEMORY_ROWS = 60
SUMMARY_LINES_PER_FILE = 40
RETRY_DELAY_CAP = 30.0  # seconds; a longer Retry-After is capped (the engine retries the step later anyway)

_TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
_LANG = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml", ".sh": "bash",
         ".md": "markdown", ".cfg": "ini", ".ini": "ini", ".txt": "text"}


class PolicyError(NightlabError):
    """The policy could not produce a usable proposal this step; `str()` is the reason, safe to store and show.

    `usage` holds the tokens and cost spent on the failed attempt, so the engine can still count them.
    """

    def __init__(self, reason: str, usage: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = dict(usage or {})


class _Invalid(Exception):
    """The model's answer cannot be used; the message is quoted back to it in the corrective retry."""


# ------------------------------------------------------------------------------------------------ litellm
_LITELLM: ModuleType | None = None
_LITELLM_LOCK = threading.Lock()


def _litellm() -> ModuleType:
    """Import litellm on first use, configured so that it never reaches the network by itself.

    LITELLM_LOCAL_MODEL_COST_MAP must be set before the import, or litellm fetches its price list at import time.
    """
    with _LITELLM_LOCK:  # the engine may call from a worker thread while prewarm() imports
        return _LITELLM or _import_litellm()


def _import_litellm() -> ModuleType:
    global _LITELLM
    if _LITELLM is None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        litellm.turn_off_message_logging = True
        litellm.callbacks = []
        litellm.success_callback = []
        litellm.failure_callback = []
        litellm._async_success_callback = []
        litellm._async_failure_callback = []
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):  # their debug output may echo request headers
            logging.getLogger(name).setLevel(logging.WARNING)
        _LITELLM = litellm
    return _LITELLM


# ------------------------------------------------------------------------------------------------ secrets
_SECRET_NAME = re.compile(r"(API_?KEY|_KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)
_SK = re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")  # OpenAI / Anthropic style keys, wherever they came from


def scrub(text: str, extra: Sequence[str] = ()) -> str:
    """`text` with every secret-looking value from the environment (and `extra`) replaced by ***."""
    secrets = [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6]
    secrets += [s for s in extra if s and len(s) >= 4]
    for s in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(s, "***")
    text = _BEARER.sub(r"\1***", text)
    return _SK.sub("***", text)


# ------------------------------------------------------------------------------------------------ usage
@dataclass
class Usage:
    """Tokens and cost of the model calls behind one proposal (or one failed step)."""

    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": round(self.cost, 6),
                "seconds": round(self.seconds, 3)}


# ------------------------------------------------------------------------------------------------ parsing
_FENCE_OPEN = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n")


def _loads_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text, strict=False)  # strict=False: raw newlines inside strings, as models often write
    except json.JSONDecodeError as e:
        raise _Invalid(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise _Invalid(f"{what} is JSON but not an object")
    return data


def json_from_text(text: str) -> dict[str, Any]:
    """The JSON object in a model's text answer: a fenced ```json block, the whole text, or the first {...} in it.

    A fenced block is closed by the first ``` after which the text in between parses, so a ``` inside a string
    value does not cut the object short.
    """
    first_error: str | None = None
    opens = list(_FENCE_OPEN.finditer(text))
    opens.sort(key=lambda m: m.group(1).lower() != "json")  # ```json blocks first, then unlabelled ones
    for m in opens:
        if m.group(1).lower() not in ("json", ""):
            continue
        start = m.end()
        for close in re.finditer(r"```", text[start:]):
            try:
                return _loads_object(text[start:start + close.start()], "the ```json block")
            except _Invalid as e:
                first_error = first_error or str(e)
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return _loads_object(stripped, "the answer")
        except _Invalid as e:
            first_error = first_error or str(e)
    decoder = json.JSONDecoder(strict=False)
    for m in list(re.finditer(r"\{", text))[:20]:
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and ("edits" in obj or "title" in obj or "diagnosis" in obj):
            return obj
    if first_error:
        raise _Invalid(first_error)
    raise _Invalid("the answer holds neither a tool call nor a JSON object")


@dataclass
class _Answer:
    """One model answer: the arguments it gave (or why they are unusable) and how to echo it back."""

    args: dict[str, Any] | None
    error: str | None
    echo: dict[str, Any]
    tool_call_ids: list[str] = field(default_factory=list)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def parse_answer(message: Any, tool: str) -> _Answer:
    """Read the tool call (or fenced / raw JSON) out of an assistant message from litellm."""
    content = _field(message, "content") or ""
    if not isinstance(content, str):
        content = str(content)
    calls = list(_field(message, "tool_calls") or [])
    echo: dict[str, Any] = {"role": "assistant", "content": content or None}
    if not calls:
        echo["content"] = content or "(empty answer)"
        try:
            return _Answer(json_from_text(content), None, echo)
        except _Invalid as e:
            return _Answer(None, str(e), echo)
    ids: list[str] = []
    echo_calls: list[dict[str, Any]] = []
    args: dict[str, Any] | None = None
    error: str | None = None
    for i, tc in enumerate(calls):
        fn = _field(tc, "function")
        name = str(_field(fn, "name") or "")
        raw = _field(fn, "arguments")
        raw_text = raw if isinstance(raw, str) else json.dumps(raw or {})
        tc_id = str(_field(tc, "id") or f"call_{i}")
        ids.append(tc_id)
        echo_calls.append({"id": tc_id, "type": "function", "function": {"name": name, "arguments": raw_text}})
        if args is not None or error is not None:
            continue  # one call per answer; later ones are answered with the same result and otherwise ignored
        if name != tool:
            error = f"called {name!r}; this step needs a call to {tool!r}"
            continue
        try:
            args = raw if isinstance(raw, dict) else _loads_object(raw_text, f"the arguments of {tool}")
        except _Invalid as e:
            error = str(e)
    echo["tool_calls"] = echo_calls
    return _Answer(args, error, echo, ids)


def _text(args: dict[str, Any], key: str, required: bool = False) -> str:
    v = args.get(key)
    if v is None:
        if required:
            raise _Invalid(f"{key!r} is missing")
        return ""
    if not isinstance(v, str):
        v = json.dumps(v) if isinstance(v, dict | list) else str(v)
    return v.strip()


def parse_edits(args: dict[str, Any]) -> list[Edit]:
    """The `edits` argument as Edit objects; a single object or a JSON-encoded string is accepted too."""
    raw = args.get("edits")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw, strict=False)
        except json.JSONDecodeError as e:
            raise _Invalid(f"'edits' is a string that is not valid JSON: {e}") from None
    if isinstance(raw, dict):
        raw = [raw]
    if raw is None:
        raise _Invalid("'edits' is missing")
    if not isinstance(raw, list):
        raise _Invalid("'edits' must be a list of {path, search, replace} objects")
    out: list[Edit] = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise _Invalid(f"edit {i} is not an object with path, search and replace")
        path = item.get("path", item.get("file"))
        search = item.get("search", "")
        replace = item.get("replace")
        if not isinstance(path, str) or not path.strip():
            raise _Invalid(f"edit {i}: 'path' is missing")
        if not isinstance(search, str) or not isinstance(replace, str):
            raise _Invalid(f"edit {i}: 'search' and 'replace' must be strings")
        out.append(Edit(path=path.strip(), search=search, replace=replace))
    return out


# ------------------------------------------------------------------------------------------------ context
_PY_TOP = re.compile(r"^(?:async\s+def|def|class)\s|^[A-Za-z_][A-Za-z0-9_]*(?:\s*:[^=]*)?\s*=(?!=)|^if __name__")
_CONF_TOP = re.compile(r"^[A-Za-z0-9_\-\[\"']")


def summarise_file(path: str, text: str, max_lines: int = SUMMARY_LINES_PER_FILE) -> list[str]:
    """Verbatim outline lines of a file too large for the prompt: top-level defs, classes and assignments."""
    if path.endswith(".py"):
        pat = _PY_TOP
    elif path.endswith((".yaml", ".yml", ".toml", ".ini", ".cfg")):
        pat = _CONF_TOP
    else:
        return []
    lines = [ln.rstrip() for ln in text.splitlines() if pat.match(ln)]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"… ({len(lines) - max_lines} more top-level lines)"]
    return lines


def _fence(text: str) -> str:
    ticks = "````"
    while ticks in text:
        ticks += "`"
    return ticks


def _lang(path: str) -> str:
    return _LANG.get(os.path.splitext(path)[1].lower(), "")


def render_files(read: Callable[[str], str | None], paths: Sequence[str], budget: int,
                 first: Sequence[str] = ()) -> str:
    """Editable files in full while their total stays within `budget` characters; the rest as outlines.

    Files named in `first` (e.g. those a traceback mentions) get the budget before the others.
    """
    order = [p for p in first if p in paths] + [p for p in paths if p not in first]
    full: list[str] = []
    outlined: list[str] = []
    used = 0
    texts: dict[str, str] = {}
    for p in order:
        t = read(p)
        if t is None:
            continue
        texts[p] = t
        if used + len(t) <= budget:
            used += len(t)
            full.append(p)
        else:
            outlined.append(p)
    out = [f"## Editable files ({len(texts)}; file budget {budget:,} characters, {used:,} shown in full)"]
    for p in full:
        t = texts[p]
        fence = _fence(t)
        out.append(f"### {p} ({len(t.splitlines())} lines)\n{fence}{_lang(p)}\n{t.rstrip(chr(10))}\n{fence}")
    if outlined:
        out.append(f"### Not shown in full (over the budget): {len(outlined)} files")
        out.append("These are only outlined. Outline lines are verbatim and may be used as `search` text; do not "
                   "guess any other text of these files.")
        outline_budget = max(1_000, budget // 4)
        spent = 0
        for i, p in enumerate(outlined):
            t = texts[p]
            lines = summarise_file(p, t) if spent < outline_budget else []
            head = f"- {p} ({len(t.splitlines())} lines, {len(t):,} chars)"
            if not lines:
                out.append(head)
            else:
                body = "\n".join(lines)
                spent += len(body)
                out.append(f"{head}, top-level lines:\n{_fence(body)}{_lang(p)}\n{body}\n{_fence(body)}")
            if i >= 200:
                out.append(f"- … and {len(outlined) - i - 1} more files")
                break
    return "\n\n".join(out)


def _fmt(v: float | None) -> str:
    return f"{v:.6g}" if v is not None else "-"


def _one_line(s: str | None, n: int = 100) -> str:
    s = " ".join((s or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def render_tree(ctx: PolicyContext) -> str:
    """The experiment tree as a Markdown table: the newest rows, plus the baseline and the best when older."""
    exps = sorted(ctx.experiments, key=lambda e: e.id)
    if not exps:
        return "## Experiments\n(none yet)"
    by_id = {e.id: e for e in exps}
    keep = {e.id for e in exps[-TREE_ROWS:]} | {i for i in (ctx.baseline_id, ctx.best_id) if i is not None}
    rows = [e for e in exps if e.id in keep]
    out = [f"## Experiments ({len(exps)}; {'all' if len(rows) == len(exps) else f'{len(rows)} shown'}; "
           f"metric {ctx.metric}, {ctx.goal}; noise floor {ctx.noise_floor:.3g})",
           "| id | parent | kind | status | metric | vs parent | title | notes |",
           "|---|---|---|---|---|---|---|---|"]
    for e in rows:
        parent = by_id.get(e.parent_id) if e.parent_id is not None else None
        delta = f"{e.metric - parent.metric:+.4g}" if e.metric is not None and parent and parent.metric is not None \
            else "-"
        status = e.status + (" (best)" if e.id == ctx.best_id else "")
        notes = "; ".join(x for x in (e.failure_class or "", _one_line(e.diagnosis)) if x)
        out.append(f"| {e.id} | {e.parent_id if e.parent_id is not None else '-'} | {e.kind} | {status} | "
                   f"{_fmt(e.metric)} | {delta} | {_one_line(e.title, 80).replace('|', '/')} | "
                   f"{notes.replace('|', '/')} |")
    return "\n".join(out)


def _mentioned_files(log_tail: str, paths: Sequence[str]) -> list[str]:
    """Editable files a traceback or log names, most recently mentioned first."""
    hits: list[tuple[int, str]] = []
    for p in paths:
        pos = max(log_tail.rfind(f"/{p}"), log_tail.rfind(f'"{p}"'), log_tail.rfind(f" {p}"))
        if pos >= 0:
            hits.append((pos, p))
    return [p for _, p in sorted(hits, reverse=True)]


def _fix_depth(ctx: PolicyContext, failed: ExperimentView) -> int:
    by_id = {e.id: e for e in ctx.experiments}
    depth, e = 0, failed
    while e.kind == Kind.FIX and e.parent_id is not None and depth < 50:
        depth += 1
        parent = by_id.get(e.parent_id)
        if parent is None:
            break
        e = parent
    return depth


# ------------------------------------------------------------------------------------------------ the policy
class LLMPolicy(PolicyBase):
    """A Policy backed by any litellm model. Construction is free: nothing is imported or called until a step."""

    name = "llm"

    def __init__(self, cfg: LLMConfig, *, stream: bool = False, max_retries: int = 3,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.stream = stream  # stream tokens (long generations on local servers) and assemble the answer
        self.max_retries = max_retries  # for 429 / 5xx / connection errors; timeouts are not retried
        self.sleep = sleep
        self.total_usage = Usage(cfg.model)  # everything this policy spent, failed steps included
        self.last_usage = {}  # of the latest propose/fix call, whatever its outcome
        self._tool_mode = "named"  # named tool_choice -> "auto" -> "none" (fenced JSON) as the server refuses them
        self.last_decision: Decision | None = None  # the latest accepted step: exactly what the model was sent

    def prewarm(self) -> None:
        """Import litellm (about 3 s) in a background thread, e.g. while the baseline runs, so that the first
        step does not wait for it. Optional; nothing is sent anywhere."""
        threading.Thread(target=_litellm, name="nightlab-litellm-import", daemon=True).start()

    # ----------------------------------------------------------------------------------------- Policy
    def propose(self, ctx: PolicyContext) -> Proposal | None:
        """Ask the model for the next experiment on top of the current best (or the baseline)."""
        if not ctx.editable:
            raise PolicyError("no editable files: list the files the agent may edit under `editable` in nightlab.toml")
        parent = ctx.best_id if ctx.best_id is not None else ctx.baseline_id
        messages = self.messages(ctx)

        def build(args: dict[str, Any]) -> Proposal:
            lines = _text(args, "title", required=True).splitlines()
            title = _one_line(lines[0] if lines else "", 120)
            if not title:
                raise _Invalid("'title' is empty")
            edits = parse_edits(args)
            if not edits:
                raise _Invalid("'edits' is empty: an experiment must change the code")
            return Proposal(title=title, rationale=_text(args, "rationale"), kind=Kind.LLM,
                            expected_effect=_text(args, "expected_effect"), edits=edits, parent_id=parent)

        return self._converse(ctx, messages, PROPOSE_TOOL, build, parent)

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        """Ask the model to repair a failed run; `Abandon` with the model's diagnosis when it says no code change
        can (the branch stops with that reason)."""
        if not ctx.editable:
            return None
        messages = self.messages(ctx, failed)

        def build(args: dict[str, Any]) -> Proposal:
            diagnosis = _text(args, "diagnosis", required=True)
            if not diagnosis:
                raise _Invalid("'diagnosis' is empty")
            edits = [] if args.get("edits") == [] else parse_edits(args)  # [] = no code change can fix it
            title = _text(args, "title") or f"fix #{failed.id}: {diagnosis.splitlines()[0]}"
            return Proposal(title=_one_line(title, 120), rationale=diagnosis, edits=edits, parent_id=failed.id,
                            kind=Kind.FIX, diagnosis=diagnosis)

        return self._converse(ctx, messages, FIX_TOOL, build, failed.id, allow_empty=True)

    # ----------------------------------------------------------------------------------------- prompt
    def messages(self, ctx: PolicyContext, failed: ExperimentView | None = None) -> list[dict[str, Any]]:
        """The system and user messages for a step (public so the TUI can show exactly what is sent)."""
        system = SYSTEM_PROMPT.format(metric=ctx.metric, goal=ctx.goal)
        return [{"role": "system", "content": system}, {"role": "user", "content": self.user_prompt(ctx, failed)}]

    def user_prompt(self, ctx: PolicyContext, failed: ExperimentView | None = None) -> str:
        parent = failed.id if failed is not None else (ctx.best_id if ctx.best_id is not None else ctx.baseline_id)
        parts = [
            "# Task\n"
            f"Improve `{ctx.metric}` ({ctx.goal}). Improvements within the noise floor ({ctx.noise_floor:.3g}) do not "
            f"count. Time limit per run: {ctx.timeout_s:g} s. Runs left in this session: {ctx.runs_left}."
        ]
        if ctx.time_left_s is not None:  # the session's deadline or compute budget: a longer run is not started
            parts[0] += (f" The session's deadline or compute budget leaves about {ctx.time_left_s:.0f} s for the "
                         "next run: propose one that ends in that time (the runs above show how long each took).")
        if ctx.brief.strip():
            brief = ctx.brief.strip()
            cut = f"\n(brief truncated to {BRIEF_CHARS:,} of {len(brief):,} characters)" if len(brief) > BRIEF_CHARS \
                else ""
            parts.append(f"## Brief from the user\n{brief[:BRIEF_CHARS]}{cut}")
        parts.append(render_tree(ctx))
        parts.append("## Already tried (do not repeat)\n"
                     + format_memory(settled(ctx.experiments, include_pending=True), limit=MEMORY_ROWS))
        first = _mentioned_files(failed.log_tail, ctx.editable) if failed is not None else []
        files = render_files(lambda p: self._read(ctx, parent, p), ctx.editable, self.cfg.context_chars, first)
        where = f"as of experiment #{parent}" if parent is not None else "as committed"
        parts.append(f"{files}\n\n(files {where}; your edits apply to exactly these versions)")
        if ctx.protected:
            parts.append("## Protected (never edit)\n" + ", ".join(ctx.protected))
        if failed is None:
            on = f"experiment #{parent} (the current best)" if ctx.best_id is not None else "the baseline code"
            parts.append(f"## Your step\nPropose the next experiment, building on {on}. Call `{PROPOSE_TOOL}`.")
        else:
            depth = _fix_depth(ctx, failed) + 1
            tail = failed.log_tail[-LOG_TAIL_CHARS:]
            cut = f" (last {LOG_TAIL_CHARS:,} characters)" if len(failed.log_tail) > LOG_TAIL_CHARS else ""
            facts = [f"status: {failed.status}", f"result: {failed.run_result or '-'}",
                     f"failure class: {failed.failure_class or '-'}", f"stage reached: {failed.stage or '-'}"]
            if failed.seconds is not None:
                facts.append(f"ran {failed.seconds:.1f} s")
            known = self.known_failure(ctx, failed)
            parts.append(
                f"## Failed run #{failed.id}: {failed.title}\n" + "; ".join(facts)
                + (f"\ndiagnosis so far: {failed.diagnosis}" if failed.diagnosis else "")
                + (f"\n### nightlab's fix catalogue recognises this failure\n{scrub(known)}" if known else "")
                + f"\n### Log tail{cut}\n{_fence(tail)}text\n{scrub(tail)}\n{_fence(tail)}"
            )
            parts.append(f"## Your step\nDiagnose why run #{failed.id} failed and fix it with the smallest edit. "
                         f"This is fix attempt {depth} of at most {ctx.debug_depth}; after that the branch is "
                         f"abandoned. Call `{FIX_TOOL}` (empty edits if no code change can fix it).")
        return "\n\n".join(parts)

    def known_failure(self, ctx: PolicyContext, failed: ExperimentView) -> str:
        """The fix catalogue's diagnosis of the failure (the one the builtin policy acts on), and the repair it
        would make or why none can work; '' when no entry recognises it."""
        files = {p: t for p in ctx.editable if p.endswith(".py") and (t := self._read(ctx, failed.id, p))}
        paths = sorted({*files, *(p for p in ctx.tracked if p.endswith(".py"))})
        sym = catalogue.symptoms(failed.failure_class, failed.log_tail or "", failed.run_result, paths)
        site = catalogue.Site(files=files, frames=sym.frames, tracked=frozenset(ctx.tracked), gpus=ctx.gpus_per_job)
        try:
            return catalogue.explain(sym, site)
        except Exception as err:  # the prompt goes out without it rather than not at all
            log.debug("fix catalogue failed on #%s: %s", failed.id, err)
            return ""

    @staticmethod
    def _read(ctx: PolicyContext, exp_id: int | None, path: str) -> str | None:
        """A file of an experiment, None when it does not exist (the engine's reader gives "" for that)."""
        try:
            text = ctx.read_file(exp_id, path)
        except Exception:  # a path the commit does not hold
            return None
        return text or None

    # ----------------------------------------------------------------------------------------- one step
    def _converse(self, ctx: PolicyContext, messages: list[dict[str, Any]], tool: str,
                  build: Callable[[dict[str, Any]], Proposal], parent: int | None,
                  allow_empty: bool = False) -> Proposal | None:
        """Call, parse, validate; on an invalid answer one corrective retry quoting the error, then PolicyError."""
        usage = Usage(self.cfg.model)
        self.last_usage = usage.as_dict()
        self.last_decision = None
        try:
            for attempt in (1, 2):
                message = self._complete(messages, tool, usage)
                answer = parse_answer(message, tool)
                try:
                    if answer.error is not None or answer.args is None:
                        raise _Invalid(answer.error or "no answer")
                    proposal = build(answer.args)
                    if not proposal.edits:
                        if allow_empty:  # the model says no code change can fix it: the branch stops, saying why
                            log.info("model gave up on fixing: %s", proposal.diagnosis)
                            raise Abandon(f"the model found no code change that can fix it: "
                                          f"{_one_line(proposal.diagnosis, 300)}")
                        raise _Invalid("'edits' is empty")
                    self._validate(ctx, proposal, parent)
                    proposal.usage = usage.as_dict()
                    self.last_decision = Decision(
                        kind=FIX if tool == FIX_TOOL else PROPOSE,
                        state=state_features(ctx, {"fix": 1.0 if tool == FIX_TOOL else 0.0}), tool=tool,
                        messages=[dict(m) for m in messages], answer=dict(answer.args or {}))
                    return proposal
                except (_Invalid, EditError) as err:
                    reason = scrub(str(err))
                    log.info("model answer invalid (attempt %d): %s", attempt, reason)
                    if attempt == 2:
                        raise PolicyError(f"the model's answer was invalid twice; last error: {reason}",
                                          usage.as_dict()) from None
                    messages = [*messages, *self._corrective(answer, reason, tool, ctx)]
        finally:
            self.last_usage = usage.as_dict()
            self.total_usage.add(usage)
        raise AssertionError("unreachable")

    def _validate(self, ctx: PolicyContext, proposal: Proposal, parent: int | None) -> None:
        """The engine's own check, run early so the model can correct itself: apply the edits to the parent."""
        links = ctx.link_in_path
        changes = apply_edits(proposal.edits, lambda p: self._read(ctx, parent, p), ctx.editable, ctx.protected,
                              None if links is None else (lambda p: links(parent, p)))
        if not changes:
            raise _Invalid("the edits change nothing (each replace equals its search)")
        repeat = is_repeat(proposal, ctx.experiments)
        if repeat is not None:
            raise _Invalid(f"this repeats experiment {repeat}, which was already tried; propose a different "
                           "hypothesis")

    @staticmethod
    def _corrective(answer: _Answer, reason: str, tool: str, ctx: PolicyContext) -> list[dict[str, Any]]:
        text = (f"Your answer could not be used: {reason}\nNothing was applied. Answer again with a complete, "
                f"corrected `{tool}` call (all edits, not only the one that failed). Copy each search text exactly "
                f"from the file shown above. Editable files: {', '.join(ctx.editable)}.")
        out: list[dict[str, Any]] = [answer.echo]
        if answer.tool_call_ids:
            out += [{"role": "tool", "tool_call_id": i, "content": text} for i in answer.tool_call_ids]
        else:
            out.append({"role": "user", "content": text})
        return out

    # ----------------------------------------------------------------------------------------- the call
    def _api_key(self) -> str | None:
        """The key for this call, from the environment only; None lets litellm use its provider default."""
        if self.cfg.api_key_env:
            value = os.environ.get(self.cfg.api_key_env)
            if not value:
                raise PolicyError(f"[llm] api_key_env names {self.cfg.api_key_env}, which is not set in the "
                                  "environment")
            return value
        if self.cfg.api_base and self.cfg.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            return "no-key"  # local OpenAI-compatible servers ignore the key, but the OpenAI SDK insists on one
        return None

    def _complete(self, messages: list[dict[str, Any]], tool: str, usage: Usage) -> Any:
        """One model answer (the assistant message), retrying rate limits and transient server errors.

        Retries are ours, not litellm's `num_retries` (set to 0): litellm would also retry timeouts, and through
        two layers, which multiplies the wait; here a timeout fails the step at once with a clear reason.
        """
        litellm = _litellm()
        key = self._api_key()
        base = re.sub(r"//[^/@]*@", "//***@", self.cfg.api_base or "")  # no user:password from the URL in messages
        where = self.cfg.model + (f" at {base}" if base else "")
        attempt = 0
        while True:
            kwargs: dict[str, Any] = {
                "model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens, "timeout": self.cfg.timeout, "num_retries": 0,
                "drop_params": True,  # a parameter the provider does not take is dropped, not an error
                "_skip_mcp_handler": True,  # our tools are plain functions; skips litellm's MCP gateway import
            }
            if self.cfg.api_base:
                kwargs["api_base"] = self.cfg.api_base
            if key is not None:
                kwargs["api_key"] = key
            if self._tool_mode != "none":
                kwargs["tools"] = [TOOLS[tool]]
                if self._tool_mode == "named":
                    kwargs["tool_choice"] = {"type": "function", "function": {"name": tool}}
            if self.stream:
                kwargs["stream"] = True
                kwargs["stream_options"] = {"include_usage": True}
            start = time.monotonic()
            try:
                if self.stream:
                    chunks = list(litellm.completion(**kwargs))
                    response = litellm.stream_chunk_builder(chunks, messages=messages)
                else:
                    response = litellm.completion(**kwargs)
            except Exception as err:
                usage.seconds += time.monotonic() - start
                delay = self._on_error(err, litellm, where, attempt, usage, key)
                if delay is not None:  # None: retry at once in another tool mode, not counted as a retry
                    attempt += 1
                    log.info("model call to %s failed (%s); retry %d in %.1f s", where,
                             type(err).__name__, attempt, delay)
                    self.sleep(delay)
                continue
            if response is None:  # stream_chunk_builder on a stream without chunks
                raise PolicyError(f"the model at {where} streamed an empty answer", usage.as_dict())
            self._count(response, usage, litellm, time.monotonic() - start)
            choices = _field(response, "choices") or []
            if not choices:
                raise PolicyError(f"the model at {where} returned no choices", usage.as_dict())
            return _field(choices[0], "message")

    def _on_error(self, err: Exception, litellm: ModuleType, where: str, attempt: int, usage: Usage,
                  key: str | None) -> float | None:
        """What a failed call means: seconds to wait before a retry, None to retry at once in a simpler tool mode
        (the server refused tool calling), or PolicyError with a reason a user can act on."""
        msg = scrub(" ".join(str(err).split()), [key or ""])[:300]
        status = getattr(err, "status_code", None)

        def fail(reason: str) -> PolicyError:
            return PolicyError(scrub(reason, [key or ""]), usage.as_dict())

        if isinstance(err, litellm.Timeout):
            raise fail(f"the model call to {where} timed out after {self.cfg.timeout:g} s "
                       "(raise [llm] timeout for slow models)") from None
        if isinstance(err, litellm.AuthenticationError) or status in (401, 403):
            env = self.cfg.api_key_env or "the provider's key variable (e.g. OPENAI_API_KEY)"
            raise fail(f"{where} refused the API key (HTTP {status}); check {env}") from None
        if isinstance(err, litellm.ContextWindowExceededError):
            raise fail(f"the prompt is too long for {self.cfg.model}; lower [llm] context_chars") from None
        if isinstance(err, litellm.BadRequestError) and self._tool_mode != "none" and \
                re.search(r"tool|function", str(err), re.IGNORECASE):
            self._tool_mode = "auto" if self._tool_mode == "named" else "none"
            log.info("%s refused tool calling (%s); retrying with tool mode %r", where, msg, self._tool_mode)
            return None
        if isinstance(err, litellm.NotFoundError) or status == 404:
            raise fail(f"model not found: {where}: {msg}") from None
        transient = isinstance(err, litellm.RateLimitError | litellm.APIConnectionError) or status in _TRANSIENT_STATUS
        if not transient:
            raise fail(f"the model call to {where} failed: {type(err).__name__}: {msg}") from None
        if status == 429 and re.search(r"quota|billing|credit", str(err), re.IGNORECASE):
            raise fail(f"{where}: quota exhausted (HTTP 429): {msg}") from None
        if attempt >= self.max_retries:
            what = "rate limited (HTTP 429)" if status == 429 else f"unavailable ({type(err).__name__}: {msg})"
            raise fail(f"{where} {what}; gave up after {attempt + 1} tries") from None
        return min(RETRY_DELAY_CAP, _retry_after(err) or 2.0 ** attempt)

    def _count(self, response: Any, usage: Usage, litellm: ModuleType, seconds: float) -> None:
        u = _field(response, "usage")
        prompt = int(_field(u, "prompt_tokens") or 0) if u is not None else 0
        completion = int(_field(u, "completion_tokens") or 0) if u is not None else 0
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # a model without a known price (local servers): cost unknown, counted as 0
            cost = 0.0
        usage.calls += 1
        usage.prompt_tokens += prompt
        usage.completion_tokens += completion
        usage.cost += cost
        usage.seconds += seconds
        log.info("model call: %s, %d prompt + %d completion tokens, $%.4f, %.1f s", self.cfg.model, prompt,
                 completion, cost, seconds)


def _retry_after(err: Exception) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms or retry-after), if it said."""
    headers = getattr(err, "litellm_response_headers", None)
    if headers is None:
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        s = headers.get("retry-after")
        if s is not None:
            return max(0.0, float(s))
    except (TypeError, ValueError):
        return None
    return None
