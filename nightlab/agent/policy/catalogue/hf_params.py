"""Hugging Face transformers' renamed and removed training arguments, from the errors the installed release raises.

transformers 5 removed what 4.x had deprecated: `TrainingArguments(evaluation_strategy=...)` raises `TypeError:
TrainingArguments.__init__() got an unexpected keyword argument 'evaluation_strategy'`, `Trainer(tokenizer=...)` the
same for `tokenizer`, and `from transformers import AdamW` an ImportError. Tutorials and most fine-tuning repositories
written before 2025 use them. Once one is recognised, every removed name the tables below know is rewritten in one
fix (the next run would only fail on the next one): a rename keeps the value, a removed switch whose behaviour is now
the only one is dropped, and `AdamW` comes from `torch.optim`, which transformers' own optimizer had become.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, call_name, keyword, rewrite_files, without_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_transformers", "repair_transformers"]

# TrainingArguments (and its subclasses: Seq2SeqTrainingArguments, TRL's SFTConfig, ...) keyword -> new keyword
RENAMED_ARGS: dict[str, str] = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "per_gpu_train_batch_size": "per_device_train_batch_size",
    "per_gpu_eval_batch_size": "per_device_eval_batch_size",
    "push_to_hub_token": "hub_token",
    "torchdynamo": "torch_compile_backend",
}
# removed switches: what they chose is now the only behaviour (or a log folder, now under output_dir)
DROPPED_ARGS = frozenset({"overwrite_output_dir", "logging_dir", "use_mps_device", "half_precision_backend",
                          "fp16_backend", "save_safetensors", "jit_mode_eval", "tpu_num_cores", "past_index",
                          "ray_scope", "use_legacy_prediction_loop", "use_ipex"})
# Trainer (and subclasses) keyword -> new keyword
RENAMED_TRAINER: dict[str, str] = {"tokenizer": "processing_class"}

_UNEXPECTED = r"(\w*(?:TrainingArguments|Config|Trainer))\.__init__\(\) got an unexpected keyword argument '(\w+)'"
_ADAMW = r"cannot import name 'AdamW' from 'transformers'"


def recognise_transformers(sym: Symptoms) -> Match | None:
    m = sym.says(_UNEXPECTED)
    if m is not None:
        cls, kw = m.group(1), m.group(2)
        known = RENAMED_TRAINER if cls.endswith("Trainer") else {**RENAMED_ARGS, **{k: "" for k in DROPPED_ARGS},
                                                                  "warmup_ratio": "warmup_steps",
                                                                  "group_by_length": "train_sampling_strategy",
                                                                  "include_inputs_for_metrics": "include_for_metrics"}
        if kw not in known:
            return None
        now = f"{known[kw]}=" if known[kw] else "nothing (its behaviour is the only one now)"
        return Match(f"transformers 5 no longer accepts {cls}({kw}=...): it became {now}", {"cls": cls, "kw": kw})
    if sym.says(_ADAMW) is not None:
        return Match("transformers 5 removed its AdamW optimizer: torch.optim.AdamW is the same algorithm",
                     {"kw": "AdamW"})
    return None


def _is_args(name: str) -> bool:
    last = name.split(".")[-1]
    return last.endswith("TrainingArguments") or (last.endswith("Config") and last[:1].isupper()
                                                  and last not in ("AutoConfig", "PretrainedConfig"))


def _is_trainer(name: str) -> bool:
    return name.split(".")[-1].endswith("Trainer")


def _renamed(call: cst.Call, old: str, now: str, value: str | None = None) -> cst.Call:
    """`call` with keyword `old` renamed `now` where it stands (its value kept, or `value`)."""
    args = [a.with_changes(keyword=cst.Name(now), **({"value": cst.parse_expression(value)} if value else {}))
            if a.keyword is not None and a.keyword.value == old else a for a in call.args]
    return call.with_changes(args=args)


def _args_edit(src: Source, call: cst.Call) -> list[str]:
    """Plan the TrainingArguments renames and drops on one call; what changed, in words."""
    new, done = call, []
    for old, now in RENAMED_ARGS.items():
        if keyword(new, old) is not None and keyword(new, now) is None:
            new = _renamed(new, old, now)
            done.append(f"{old}= -> {now}=")
    for old in sorted(DROPPED_ARGS):
        if keyword(new, old) is not None:
            new = without_keyword(new, old)
            done.append(f"{old}= dropped")
    if keyword(new, "warmup_ratio") is not None:  # warmup_steps takes a float in [0, 1) as a share of the steps
        if keyword(new, "warmup_steps") is None:
            new = _renamed(new, "warmup_ratio", "warmup_steps")
            done.append("warmup_ratio= -> warmup_steps= (a float below 1 is a share of the steps)")
        else:
            new = without_keyword(new, "warmup_ratio")
            done.append("warmup_ratio= dropped (warmup_steps= is set)")
    for old, now, value in (("group_by_length", "train_sampling_strategy", '"group_by_length"'),
                            ("include_inputs_for_metrics", "include_for_metrics", '["inputs"]')):
        a = keyword(new, old)
        if a is None:
            continue
        if src.code(a.value).strip() == "False":
            new = without_keyword(new, old)
            done.append(f"{old}=False dropped")
        else:
            new = _renamed(new, old, now, value)
            done.append(f"{old}= -> {now}={value}")
    if done:
        src.replace(call, new)
    return done


def _plan(src: Source) -> list[str]:
    done: list[str] = []
    for call in src.calls():
        name = call_name(call)
        if _is_args(name):
            done += [f"line {src.line(call)} {w}" for w in _args_edit(src, call)]
        elif _is_trainer(name):
            for old, now in RENAMED_TRAINER.items():
                a = keyword(call, old)
                if a is not None and keyword(call, now) is None:
                    src.replace(call, _renamed(call, old, now))
                    done.append(f"line {src.line(call)} {old}= -> {now}=")
    adamw = src.imported_from("transformers").get("AdamW")
    if adamw is not None:
        for imp in src.walk(cst.ImportFrom):
            if any(a is adamw for a in (imp.names if isinstance(imp.names, tuple | list) else [])):
                rest = [a for a in imp.names if a is not adamw] if not isinstance(imp.names, cst.ImportStar) else []
                stmt = src.statement_of(imp)
                if stmt is None:
                    break
                if rest:
                    rest[-1] = rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                    src.replace(imp, imp.with_changes(names=rest))
                else:
                    src.remove_statement(stmt)
                src.insert_after_imports("from torch.optim import AdamW\n")
                done.append(f"line {src.line(imp)} AdamW imported from torch.optim")
                for c in src.calls():  # transformers' own keywords torch's AdamW does not take
                    if call_name(c) == "AdamW" and keyword(c, "no_deprecation_warning") is not None:
                        src.replace(c, without_keyword(c, "no_deprecation_warning"))
                break
    return done


def repair_transformers(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    def plan(src: Source) -> str:
        if "transformers" not in src.text and "trl" not in src.text and \
                not re.search(r"Trainer|TrainingArguments", src.text):
            return ""
        return ", ".join(_plan(src))

    texts, words = rewrite_files(site.python(), plan)
    if not texts:
        yield NoFix(f"{match.diagnosis}, but the call is not written literally in the repository's editable code "
                    "(a config file or a dict handed to it?): rename it there")
        return
    yield Fix(title="update the training arguments to transformers 5 (renamed and removed names)",
              rationale=f"The run failed because {match.diagnosis}. Every removed name nightlab knows is rewritten "
                        f"at once, values kept: {'; '.join(words)}.", texts=texts)
