"""The `llm` policy through the real stack: LLMPolicy -> litellm -> openai SDK -> HTTP -> a scripted local server.

No network and no real key: the server listens on 127.0.0.1 and OPENAI_API_KEY holds a fake value, which must
reach the server only in the Authorization header and never appear in anything the policy returns or raises.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from nightlab.agent.config import LLMConfig
from nightlab.agent.memory import edit_signature, format_memory, is_repeat, patch_signature, search, settled
from nightlab.agent.policy.base import Abandon, Edit, ExperimentView, PolicyContext, Proposal
from nightlab.agent.policy.llm import FIX_TOOL, PROPOSE_TOOL, LLMPolicy, PolicyError, json_from_text, scrub

from fake_openai import (
    FakeOpenAI,
    Reply,
    error_reply,
    rate_limited,
    text_reply,
    tool_reply,
)

# litellm's pydantic models warn about a TypedDict on first streaming use; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Item 'summary' on TypedDict:UserWarning")

FAKE_KEY = "sk-test-FAKEKEY-0123456789abcdef"

TRAIN = '''\
"""Tiny training script."""
import math

LR = 0.05
EPOCHS = 3


def train(seed):
    score = 0.9 - 0.25 * abs(math.log10(LR / 0.3)) - 0.3 / EPOCHS
    print(f"acc={score:.4f}")
'''
EVAL = "def evaluate(pred, y):\n    return (pred == y).mean()\n"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """A started fake OpenAI-compatible server with an empty script (tests push replies)."""
    with FakeOpenAI() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def view(id: int, parent: int | None, title: str, status: str = "discarded", metric: float | None = None,
         kind: str = "llm", **kw: Any) -> ExperimentView:
    base: dict[str, Any] = dict(run_result="succeeded" if metric is not None else None, curve=[], loss_curve=[],
                                knobs={}, failure_class=None, diagnosis=None, log_tail="", seed=0, seconds=1.0)
    base.update(kw)
    return ExperimentView(id=id, parent_id=parent, title=title, kind=kind, status=status, metric=metric, **base)


BASELINE = view(1, None, "baseline: the code as committed", status="kept", metric=0.62, kind="baseline")


def make_ctx(experiments: Sequence[ExperimentView] = (BASELINE,), files: dict[str, str] | None = None,
             editable: Sequence[str] = ("train.py",), best_id: int | None = 1,
             reads: list[tuple[int | None, str]] | None = None) -> PolicyContext:
    tree = {"train.py": TRAIN, "eval.py": EVAL} if files is None else files

    def read_file(exp_id: int | None, path: str) -> str:
        if reads is not None:
            reads.append((exp_id, path))
        return tree.get(path, "")

    return PolicyContext(
        root="/nonexistent", metric="acc", goal="maximize", editable=list(editable), protected=["eval.py", "data/*"],
        experiments=list(experiments), best_id=best_id, baseline_id=1, noise_floor=0.004,
        brief="Keep training under a minute. Focus on the learning rate.", timeout_s=60, runs_left=5,
        read_file=read_file, rng=random.Random(0), debug_depth=2,
    )


def make_policy(srv: FakeOpenAI, **kw: Any) -> tuple[LLMPolicy, list[float]]:
    sleeps: list[float] = []
    cfg_kw = {k: kw.pop(k) for k in ("timeout", "context_chars", "api_key_env") if k in kw}
    cfg = LLMConfig(model="openai/test-model", api_base=srv.url + "/v1", **{"timeout": 10.0, **cfg_kw})
    return LLMPolicy(cfg, sleep=sleeps.append, **kw), sleeps


GOOD = {"title": "raise the learning rate to 0.3", "rationale": "the optimum of this toy is near 0.3",
        "expected_effect": "acc +0.1", "edits": [{"path": "train.py", "search": "LR = 0.05", "replace": "LR = 0.3"}]}


def with_edit(path: str, search: str, replace: str, **over: Any) -> dict[str, Any]:
    return {**GOOD, **over, "edits": [{"path": path, "search": search, "replace": replace}]}


def assert_no_key(*things: Any) -> None:
    for t in things:
        text = repr(t) + (json.dumps(t.usage) if isinstance(t, Proposal | PolicyError) else "")
        assert FAKE_KEY not in text
        assert FAKE_KEY[8:20] not in text


def last_messages(srv: FakeOpenAI) -> list[dict[str, Any]]:
    msgs = srv.requests[-1].body["messages"]
    assert isinstance(msgs, list)
    return msgs


# ------------------------------------------------------------------------------------------------ answers
def test_tool_call_gives_a_validated_proposal(server: FakeOpenAI) -> None:
    server.push(tool_reply(PROPOSE_TOOL, GOOD, prompt_tokens=321, completion_tokens=45))
    policy, _ = make_policy(server)
    p = policy.propose(make_ctx())
    assert p is not None
    assert (p.kind, p.title, p.parent_id) == ("llm", "raise the learning rate to 0.3", 1)
    assert p.edits == [Edit("train.py", "LR = 0.05", "LR = 0.3")]
    assert p.rationale.startswith("the optimum") and p.expected_effect == "acc +0.1"
    assert p.usage["model"] == "openai/test-model"
    assert (p.usage["calls"], p.usage["prompt_tokens"], p.usage["completion_tokens"]) == (1, 321, 45)
    assert p.usage["cost"] == 0.0  # a local model has no known price
    assert policy.total_usage.prompt_tokens == 321 and policy.last_usage == p.usage

    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {FAKE_KEY}"  # the key travels in the header only
    assert FAKE_KEY not in req.raw
    body = req.body
    assert body["model"] == "test-model" and body["temperature"] == 0.2 and body["max_tokens"] == 4096
    assert [t["function"]["name"] for t in body["tools"]] == [PROPOSE_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": PROPOSE_TOOL}}
    system, user = body["messages"]
    assert system["role"] == "system" and "exactly once" in system["content"] and "```json" in system["content"]
    assert "LR = 0.05" in user["content"] and "Focus on the learning rate" in user["content"]
    assert "| 1 | - | baseline | kept (best) | 0.62 |" in user["content"]
    assert "eval.py" in user["content"].split("## Protected")[1]
    assert_no_key(p)


def test_fenced_json_for_models_without_tools(server: FakeOpenAI) -> None:
    answer = "I will test a higher learning rate.\n\n```json\n" + json.dumps(GOOD, indent=2) + "\n```\nDone."
    server.push(text_reply(answer))
    policy, _ = make_policy(server)
    p = policy.propose(make_ctx())
    assert p is not None and p.edits == [Edit("train.py", "LR = 0.05", "LR = 0.3")]


def test_streamed_tool_call_is_assembled(server: FakeOpenAI) -> None:
    server.push(tool_reply(PROPOSE_TOOL, GOOD, prompt_tokens=200, completion_tokens=30))
    policy, _ = make_policy(server, stream=True)
    p = policy.propose(make_ctx())
    assert p is not None and p.edits == [Edit("train.py", "LR = 0.05", "LR = 0.3")]
    assert (p.usage["prompt_tokens"], p.usage["completion_tokens"]) == (200, 30)  # from the include_usage chunk
    body = server.requests[0].body
    assert body["stream"] is True


def test_streamed_fenced_json(server: FakeOpenAI) -> None:
    server.push(text_reply("```json\n" + json.dumps(GOOD) + "\n```"))
    policy, _ = make_policy(server, stream=True)
    p = policy.propose(make_ctx())
    assert p is not None and p.title == GOOD["title"]


def test_malformed_json_gets_one_corrective_retry(server: FakeOpenAI) -> None:
    server.push(tool_reply(PROPOSE_TOOL, '{"title": "raise lr", "edits": [{"path": "train.py",'),
                     tool_reply(PROPOSE_TOOL, GOOD))
    policy, _ = make_policy(server)
    p = policy.propose(make_ctx())
    assert p is not None and p.usage["calls"] == 2
    assert p.usage["prompt_tokens"] == 240 and p.usage["completion_tokens"] == 80
    msgs = last_messages(server)
    assert msgs[2]["role"] == "assistant" and msgs[2]["tool_calls"][0]["function"]["name"] == PROPOSE_TOOL
    assert msgs[3]["role"] == "tool" and msgs[3]["tool_call_id"] == msgs[2]["tool_calls"][0]["id"]
    assert "not valid JSON" in msgs[3]["content"]


def test_search_text_not_found_is_quoted_back(server: FakeOpenAI) -> None:
    server.push(tool_reply(PROPOSE_TOOL, with_edit("train.py", "LR = 0.5", "LR = 0.3")),
                     tool_reply(PROPOSE_TOOL, GOOD))
    policy, _ = make_policy(server)
    p = policy.propose(make_ctx())
    assert p is not None and p.edits[0].search == "LR = 0.05"
    assert "search text not found in train.py: 'LR = 0.5'" in last_messages(server)[3]["content"]


def test_protected_file_is_refused_twice_then_policy_error(server: FakeOpenAI) -> None:
    bad = with_edit("eval.py", "return (pred == y).mean()", "return 1.0", title="make evaluation kinder")
    server.push(tool_reply(PROPOSE_TOOL, bad), tool_reply(PROPOSE_TOOL, bad))
    policy, _ = make_policy(server)
    with pytest.raises(PolicyError) as exc:
        policy.propose(make_ctx())
    assert "invalid twice" in str(exc.value) and "eval.py is protected" in str(exc.value)
    assert exc.value.usage["calls"] == 2  # the engine can still count what the failed step cost
    assert policy.last_usage["calls"] == 2
    assert "protected" in last_messages(server)[3]["content"]
    assert_no_key(exc.value)


def test_unlisted_file_is_refused(server: FakeOpenAI) -> None:
    server.push(tool_reply(PROPOSE_TOOL, with_edit("other.py", "", "x = 1\n")), tool_reply(PROPOSE_TOOL, GOOD))
    policy, _ = make_policy(server)
    assert policy.propose(make_ctx()) is not None
    assert "not an editable file" in last_messages(server)[3]["content"]


def test_timeout_is_a_clean_policy_error(server: FakeOpenAI) -> None:
    server.push(Reply(content="too late", delay=60.0))
    policy, sleeps = make_policy(server, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(PolicyError, match=r"timed out after 0.5 s"):
        policy.propose(make_ctx())
    assert time.monotonic() - t0 < 30.0  # cut off at the timeout, not after the reply 60 s later
    assert len(server.requests) == 1 and sleeps == []  # a timeout is not retried


def test_rate_limit_then_success(server: FakeOpenAI) -> None:
    server.push(rate_limited(retry_after_ms=5), tool_reply(PROPOSE_TOOL, GOOD))
    policy, sleeps = make_policy(server)
    p = policy.propose(make_ctx())
    assert p is not None and len(server.requests) == 2
    assert sleeps == [pytest.approx(0.005)]  # the server's retry-after-ms was honoured
    assert p.usage["calls"] == 1


def test_rate_limit_gives_up_after_retries(server: FakeOpenAI) -> None:
    server.push(rate_limited(), rate_limited())
    policy, sleeps = make_policy(server, max_retries=1)
    with pytest.raises(PolicyError, match=r"rate limited \(HTTP 429\); gave up after 2 tries"):
        policy.propose(make_ctx())
    assert len(sleeps) == 1


def test_server_refusing_tools_falls_back_to_fenced_json(server: FakeOpenAI) -> None:
    server.push(error_reply(400, "tool_choice is not supported by this model"),
                     error_reply(400, "this model does not support tools"),
                     text_reply("```json\n" + json.dumps(GOOD) + "\n```"))
    policy, sleeps = make_policy(server)
    assert policy.propose(make_ctx()) is not None
    first, second, third = (r.body for r in server.requests)
    assert "tool_choice" in first and "tool_choice" not in second and "tools" in second and "tools" not in third
    assert sleeps == []


def test_rejected_key_error_never_carries_the_key(server: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.push(tool_reply(PROPOSE_TOOL, with_edit("train.py", "nope", "x")),
                error_reply(401, f"Incorrect API key provided: {FAKE_KEY}. Bearer {FAKE_KEY}"))
    policy, _ = make_policy(server)
    with pytest.raises(PolicyError, match="refused the API key") as exc:
        policy.propose(make_ctx())
    assert_no_key(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # the raw error is not chained
    assert exc.value.usage["calls"] == 1
    assert caplog.records and FAKE_KEY not in caplog.text  # ours and litellm's log records


def test_key_from_named_env_var(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LAB_KEY", "sk-other-KEY-abcdefghijklmnop")
    server.push(tool_reply(PROPOSE_TOOL, GOOD))
    policy, _ = make_policy(server, api_key_env="MY_LAB_KEY")
    assert policy.propose(make_ctx()) is not None
    assert server.requests[0].headers["authorization"] == "Bearer sk-other-KEY-abcdefghijklmnop"
    monkeypatch.delenv("MY_LAB_KEY")
    with pytest.raises(PolicyError, match="MY_LAB_KEY, which is not set"):
        policy.propose(make_ctx())


def test_repeat_of_a_settled_hypothesis_is_refused_then_corrected(server: FakeOpenAI) -> None:
    tried = view(2, 1, "Raise the learning rate to 0.3", status="discarded", metric=0.61)
    other = with_edit("train.py", "EPOCHS = 3", "EPOCHS = 6", title="train for 6 epochs")
    server.push(tool_reply(PROPOSE_TOOL, GOOD), tool_reply(PROPOSE_TOOL, other))
    policy, _ = make_policy(server)
    p = policy.propose(make_ctx([BASELINE, tried]))
    assert p is not None and p.title == "train for 6 epochs"
    user = server.requests[0].body["messages"][1]["content"]
    assert "#2 [llm] Raise the learning rate to 0.3 → no improvement" in user  # memory fed to the model
    assert "repeats experiment #2" in last_messages(server)[3]["content"]


# ------------------------------------------------------------------------------------------------ fixes
def test_fix_reads_the_failed_run_and_returns_a_fix(server: FakeOpenAI) -> None:
    broken = TRAIN.replace("LR = 0.05", "LR = 0")
    failed = view(3, 1, "lower the learning rate to 0", status="failed", run_result="failed",
                  failure_class="exception", diagnosis="ZeroDivisionError",
                  log_tail='Traceback (most recent call last):\n  File "/wt/train.py", line 9, in train\n'
                           f"ZeroDivisionError: float division by zero\nOPENAI_API_KEY={FAKE_KEY}\n")
    reads: list[tuple[int | None, str]] = []
    ctx = make_ctx([BASELINE, failed], files={"train.py": broken, "eval.py": EVAL}, reads=reads)
    fix = {"diagnosis": "log10(0) of a zero learning rate",
           "edits": [{"path": "train.py", "search": "LR = 0", "replace": "LR = 0.01"}]}
    server.push(tool_reply(FIX_TOOL, fix))
    policy, _ = make_policy(server)
    p = policy.fix(ctx, failed)
    assert p is not None and (p.kind, p.parent_id) == ("fix", 3)
    assert p.diagnosis == "log10(0) of a zero learning rate" and p.title.startswith("fix #3:")
    assert {r[0] for r in reads} == {3}  # files as of the failed experiment
    body = server.requests[0].body
    assert [t["function"]["name"] for t in body["tools"]] == [FIX_TOOL]
    user = body["messages"][1]["content"]
    assert "ZeroDivisionError: float division by zero" in user and "fix attempt 1 of at most 2" in user
    assert FAKE_KEY not in server.requests[0].raw  # scrubbed from the log tail before it is sent


def test_fix_with_no_edits_abandons_the_branch(server: FakeOpenAI) -> None:
    failed = view(3, 1, "x", status="failed", run_result="failed", failure_class="oom", log_tail="Killed")
    server.push(tool_reply(FIX_TOOL, {"diagnosis": "the data does not fit in memory", "edits": []}))
    policy, _ = make_policy(server)
    with pytest.raises(Abandon, match="no code change that can fix it: the data does not fit in memory"):
        policy.fix(make_ctx([BASELINE, failed]), failed)
    assert policy.last_usage["calls"] == 1


# ------------------------------------------------------------------------------------------------ prompt
def test_context_budget_outlines_large_files() -> None:
    big = "import os\n\nHIDDEN = 2\n\n\ndef big_function(x):\n" + "    y = x + 1  # padding\n" * 400 + "    return y\n"
    ctx = make_ctx(files={"train.py": TRAIN, "model.py": big, "eval.py": EVAL}, editable=["train.py", "model.py"])
    policy = LLMPolicy(LLMConfig(model="openai/test-model", context_chars=2_000))
    prompt = policy.user_prompt(ctx)
    assert "LR = 0.05" in prompt  # the small file fits, in full
    assert "Not shown in full (over the budget): 1 files" in prompt
    assert "def big_function(x):" in prompt and "HIDDEN = 2" in prompt  # outline: verbatim top-level lines
    assert "padding" not in prompt
    assert "file budget 2,000 characters" in prompt


def test_json_from_text_variants() -> None:
    obj = {"title": "t", "edits": [{"path": "README.md", "search": "a", "replace": "```\ncode\n```"}]}
    assert json_from_text("```json\n" + json.dumps(obj) + "\n```") == obj
    assert json_from_text(json.dumps(obj)) == obj
    assert json_from_text("Sure! " + json.dumps(obj) + " Hope it helps.") == obj
    raw_newline = '```json\n{"title": "t", "edits": [{"path": "a", "search": "x\ny", "replace": "z"}]}\n```'
    assert json_from_text(raw_newline)["edits"][0]["search"] == "x\ny"


def test_scrub_removes_env_secrets_and_bearer_tokens() -> None:
    text = f"key {FAKE_KEY} / Authorization: Bearer abc.def.ghi"
    out = scrub(text)
    assert FAKE_KEY not in out and "abc.def.ghi" not in out


def test_litellm_is_imported_lazily_and_offline() -> None:
    code = """
import os, sys, threading
from nightlab.agent.config import LLMConfig
from nightlab.agent.policy.llm import LLMPolicy
policy = LLMPolicy(LLMConfig(model="openai/x"))
print("litellm" in sys.modules)
policy.prewarm()
next(t for t in threading.enumerate() if t.name == "nightlab-litellm-import").join(60)
import litellm
print("litellm" in sys.modules, os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"), litellm.callbacks,
      litellm.success_callback, litellm.suppress_debug_info)
"""
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split("\n")[:2] == ["False", "True True [] [] True"]


# ------------------------------------------------------------------------------------------------ memory
def test_memory_settled_and_format() -> None:
    exps = [BASELINE, view(2, 1, "LR to 0.3", status="kept", metric=0.71, knobs={"LR": 0.3}),
            view(3, 2, "epochs to 9", status="discarded", metric=0.70, diagnosis="plateaued after epoch 4"),
            view(4, 2, "wider MLP", status="failed", run_result="failed", failure_class="oom"),
            view(5, 2, "dropout 0.1", status="running"),
            view(6, 2, "swap the optimiser", status="rejected", diagnosis="not this one (human feedback)"),
            view(7, 2, "re-run #2", status="kept", metric=0.71, kind="rerun")]
    items = settled(exps)
    assert [i.id for i in items] == [2, 3, 4, 6]
    assert items[0].outcome == "improved" and items[0].delta == pytest.approx(0.09)
    assert items[2].outcome == "failed: oom" and items[3].outcome == "rejected before running"
    assert [i.id for i in settled(exps, include_pending=True)] == [2, 3, 4, 5, 6]
    text = format_memory(items)
    assert "#3 [llm] epochs to 9 → no improvement; metric 0.7 (-0.01 vs parent) — plateaued after epoch 4" in text
    assert [i.id for i in search(items, "epochs plateaued")] == [3]


def test_memory_is_repeat() -> None:
    exps = [BASELINE, view(2, 1, "Raise LR to 3e-4", metric=0.6),
            view(3, 1, "fix #1: guard the division", kind="fix", status="failed"),
            view(4, 1, "double the batch size", status="rejected")]
    prop = Proposal(title="raise lr to 0.0003.", rationale="", kind="llm")
    assert is_repeat(prop, exps) == "#2 Raise LR to 3e-4"
    assert is_repeat(Proposal(title="raise LR to 1e-3", rationale="", kind="llm"), exps) is None
    assert is_repeat(Proposal(title="Raise LR to 3e-4", rationale="", kind="transform"), exps) is None
    # a rejected proposal never ran: proposing it again is not a repeat
    assert is_repeat(Proposal(title="double the batch size", rationale="", kind="llm"), exps) is None
    # fixes repeat only fixes of the same parent
    assert is_repeat(Proposal(title="fix #1: guard the division", rationale="", kind="fix", parent_id=1), exps)
    assert is_repeat(Proposal(title="fix #1: guard the division", rationale="", kind="fix", parent_id=9), exps) \
        is None
    # same change under a different title, found through the stored patch
    patch = ("diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n"
             " import math\n-LR = 0.05\n+LR = 0.0003\n")
    same = Proposal(title="a totally different title", rationale="", kind="llm",
                    edits=[Edit("train.py", "import math\nLR = 0.05", "import math\nLR   = 0.0003")])
    assert edit_signature(same.edits) == patch_signature(patch)
    assert is_repeat(same, exps, {2: patch}) == "#2 Raise LR to 3e-4"
    assert is_repeat(same, exps) is None
    assert is_repeat(same, exps, {2: patch.replace("0.0003", "0.001")}) is None
