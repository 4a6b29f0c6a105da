"""The builtin policy: experiments proposed without a network or a language model.

Order of moves for `propose`, always on top of the current best:

0. Combination: two one-knob changes of the best that each scored above it at the same seed, but within the noise
   floor alone, are tried together (independent small gains usually add up). Then capacity with the training it
   needs (compound.py): a widening (or deepening) of the best that scored within the noise is retried once with a
   longer training before it is abandoned, and a best reached by adding capacity whose loss still falls trains
   longer before anything else.
1. Diagnosis first. The best run's learning curve (and how long it took against the timeout) is read for
   pathologies — diverging / NaN, plateau, over-fitting, under-fitting, still improving at the end, too slow, noisy —
   and each pathology has an ordered list of remedies, each with its written rationale (lower the learning rate or
   clip; schedule; regularise; more capacity or steps; a cheaper setting). A tiny hidden layer (<= 64 units) of a
   model that under-fits or is still improving is widened 4x before the learning rate or the training length are
   tuned: at that size capacity is the cheapest lever (measured: the search benchmark's MLP tasks gained 0.02-0.06
   accuracy from it, where tuning the other knobs had stalled). A model that under-fits is then deepened where its
   structure is certain (depth.py: a layer-count knob, or a layer-by-layer `nn.Sequential`).
2. Known code transformations, highest expected value first (SGD → AdamW, warm-up + cosine schedule, input
   standardisation), each applied at most once per lineage and only where the pattern is recognised with certainty
   (see transforms/). A standardisation that lost under plain SGD is tried once more (compound.py): with the
   learning rate unit-scale inputs take (the one it ran with was tuned for the raw inputs' scale), or as it was once
   the optimizer became AdamW. Then a tiny hidden layer is widened even without a diagnosis (runs whose curve cannot
   be read), once per width. Gradient clipping, dropout, weight decay, label smoothing are remedies of diagnoses (a
   diverging run, over-fitting), not tried blindly: on the search benchmark blind clipping was kept once in 18 runs,
   by less than the noise.
3. Model-based search over the numeric knobs (search.py): one-knob moves while results are few, a small TPE after.

Which knobs a move may change at all (not seeds, logging, evaluation or where the program runs) is searchable.py's.
Every move that makes a run longer is checked against the timeout by the run-time model of cost_model.py (a cost
per layer type read from the code, corrected by the measured durations of past runs).

Bookkeeping lives in the experiment tree, not in this object, so a policy rebuilt after hibernation behaves the
same: `Proposal.knobs` holds the *full* knob assignment of the proposed files ({knob key: value}) and, for a code
transformation, `"transform": <name>`; the set of transforms along an experiment's ancestry is its *regime*, and
only results of the same regime inform the search (a learning rate tuned for SGD says little about AdamW).

`fix` repairs a failed run from the fix catalogue (catalogue/table.py): the first entry whose pattern the log shows
with certainty and whose repair applies -- torch.load's weights_only default, CUDA-only code on a CPU, removed numpy /
pandas / torch / scikit-learn APIs, DataLoader workers without shared memory, checkpoints that no longer fit, a
Linear layer sized for other inputs, out of memory, NaN, timeout. Where no code change can work (a package that is
not installed, a file of unknown origin) it raises `Abandon` with the reason.
"""

from __future__ import annotations

import itertools
import logging
import math
import posixpath
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from nightlab.agent import diagnose
from nightlab.agent.edits import apply_edits, matches_any
from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_change, fmt_noise
from nightlab.agent.policy import catalogue, compound, phases
from nightlab.agent.policy import cost_model as costmod
from nightlab.agent.policy import depth as depthmod
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import features as feats
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy import search as searchmod
from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.base import Abandon, PolicyBase
from nightlab.agent.policy.coupling import aligned_lengths, couple_heads, linked_lengths, one_cycle_lengths
from nightlab.agent.policy.decision import FIX, PROPOSE, Candidate, Decision
from nightlab.agent.policy.edit_guard import evaluation_edits, measurement_only_options
from nightlab.agent.policy.evaluation import evaluation_functions, fixed_lines
from nightlab.agent.policy.feedback import Rejections, read_rejections
from nightlab.agent.policy.searchable import is_numeric, leaf_name, may_search
from nightlab.agent.policy.state import (
    ExperimentState,
    Foreseen,
    Move,
    PolicyKnob,
    SearchKnob,
    discover_knobs,
    fmt_value,
    norm_value,
    settings_of,
    space_of,
)
from nightlab.agent.proposal import Edit, ExperimentView, PolicyContext, Proposal
from nightlab.agent.states import ENGINE_KINDS, FailureClass, Kind, Pricing, RunResult, Status, StepKind
from nightlab.agent.task_runners import TASK_FILES

log = logging.getLogger("nightlab.policy.builtin")

# (a script the command runs: its flags)
_FILE_EXTS = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".gin", ".sh")
_MAX_FILES = 200
_MAX_BYTES = 400_000

_SEARCH_PRIORITY = ["lr", "epochs", "steps", "batch_size", "width", "weight_decay", "dropout", "depth", "warmup",
                    "momentum", "clip", "choice", "seq_len", "other"]
# the transforms `propose` tries (in this order) after the diagnosis moves
# (gradient clipping is not among them: on a healthy run it rarely helps; it is a remedy for diverging / NaN runs.
# Standardisation stays although it often loses: taking it out of this list was tried, 2026-12-01, and cost
# one search-benchmark task 0.158 -> 0.173 log-loss while no other task gained.)
_TRANSFORM_ORDER = ["sgd_to_adamw", "warmup_cosine", "standardize"]
FEEDBACK_LOOKAHEAD = 64  # moves looked through for what a rejection's feedback asked for
ADAMW_LR = 3e-3
_TINY_WIDTH = 64  # hidden layers this narrow are widened early (see BuiltinPolicy._widen_tiny)
_SEARCH_TITLE = "tune "  # how the knob search's proposals are titled (pattern search recognises its own moves)
NO_EFFECT = Status.NO_EFFECT  # the status of a run that ran exactly like its parent


class BuiltinPolicy(PolicyBase):
    """Offline policy: diagnosis-driven moves, known code transformations, then model-based knob search."""

    name = "builtin"
    # moves after the one taken that a decision record lists as the alternatives (cheap: they are not materialised)
    LOOKAHEAD = 7

    def __init__(self) -> None:
        self._texts: dict[tuple[int | None, str], str] = {}
        self._assign_cache: dict[int, dict[str, Any]] = {}
        self.last_decision: Decision | None = None
        self._programs: dict[tuple[Any, ...], eff.Program] = {}
        self._measured: dict[tuple[Any, ...], frozenset[str]] = {}  # checkout → options only the measurement reads
        self._last_program: eff.Program | None = None
        self._cost_cache: tuple[ExperimentState, int, costmod.RunTimeModel] | None = None

    # ------------------------------------------------------------------------------------------- public
    def propose(self, ctx: PolicyContext) -> Proposal | None:
        """The next experiment on top of the current best, or None when every move has been tried.

        The decision is left in `last_decision`: the moves before the one taken (which did not apply), the one
        taken, and the next `LOOKAHEAD` moves in this policy's order, each with its features.

        With a deadline or a compute budget (`ctx.time_left_s`), a move whose predicted run cannot end in the time
        left is skipped and listed in `unfit`: when time is short, the first move that fits is proposed (a cheaper
        one: a same-shape setting, a narrower model, fewer steps), and None once nothing fits."""
        self.last_decision = None
        self.unfit = ()
        if ctx.best_id is None:
            return self._propose_without_best(ctx)
        st = self._state(ctx, ctx.best_id)
        if st.exp is None:
            return None
        sigs = self._signatures(ctx)
        moves = self._moves_heeding_people(ctx, st)
        seen: list[Move] = []
        for move in moves:
            seen.append(move)
            prop = self._materialise(ctx, st, move, sigs)
            if prop is not None:
                chosen = len(seen) - 1
                seen += itertools.islice(moves, self.LOOKAHEAD)
                self.last_decision = self._decision(ctx, st, seen, chosen, tried=set(range(chosen + 1)))
                return prop
        log.info("builtin policy: nothing left to try on top of #%s", ctx.best_id)
        return None

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        """A repair for a failed run from the fix catalogue; None when nothing applies, `Abandon` (with the reason)
        when the catalogue knows that no code change can work."""
        self.last_decision = None
        self.unfit = ()
        st = self._state(ctx, failed.id)
        sym = catalogue.symptoms(failed.failure_class, failed.log_tail or "", failed.run_result,
                                 sorted({*st.code(), *(p for p in ctx.tracked if p.endswith(".py"))}))
        site = self._site(ctx, st, failed, sym)
        sigs = self._signatures(ctx)
        refusals: list[str] = []
        for entry, match, out in catalogue.repairs(sym, site):
            if isinstance(out, catalogue.NoFix):
                refusals.append(out.reason)
                continue
            move = Move(title=out.title, rationale=out.rationale, changes=dict(out.changes), transform=out.transform,
                         diagnosis=match.diagnosis, expected=out.expected, kind=Kind.FIX, texts=out.texts or None)
            prop = self._materialise(ctx, st, move, sigs)
            if prop is not None:
                prop.parent_id = failed.id
                prop.diagnosis = match.diagnosis
                log.info("builtin policy: #%s matches catalogue entry %s", failed.id, entry.name)
                move.source = "fix"
                self.last_decision = self._decision(ctx, st, [move], 0, tried={0}, kind=FIX)
                return prop
        if refusals:
            raise Abandon(refusals[0])
        log.info("builtin policy: no known fix for #%s (%s)", failed.id, sym.cls or "unknown failure")
        return None

    def _site(self, ctx: PolicyContext, st: ExperimentState, failed: ExperimentView, sym: catalogue.Symptoms
              ) -> catalogue.Site:
        """What the catalogue's repairs see: the failed run's files and frames, what the repository ships, the
        GPUs a job gets, the knobs this branch changed since its last run that worked, and the knob editor."""
        exps = {e.id: e for e in ctx.experiments}
        ran = next((e for e in _lineage(exps, failed.parent_id) if e.run_result == RunResult.SUCCEEDED), None)
        changed: dict[str, tuple[str, Any, Any]] = {}
        if ran is not None:
            for key, value in failed.knobs.items():
                if key in ("transform", "fix") or key not in ran.knobs \
                        or norm_value(ran.knobs[key]) == norm_value(value):
                    continue
                k = st.knobs.get(key)
                changed[key] = (k.kind if k is not None else knobmod.classify(key), ran.knobs[key], value)

        def scale(kind: str, factor: float) -> catalogue.KnobChange | None:
            mv = self._scaled(ctx, st, kind, factor, "")
            if mv is None:
                return None
            key, new = next(iter(mv.changes.items()))
            return catalogue.KnobChange(key, st.knobs[key].value, new)

        return catalogue.Site(files=st.code(), command=st.command, frames=sym.frames, tracked=frozenset(ctx.tracked),
                              gpus=ctx.gpus_per_job, changed=changed, scale=scale)

    # ------------------------------------------------------------------------------------------- decisions
    def _decision(self, ctx: PolicyContext, st: ExperimentState, moves: list[Move], chosen: int, tried: set[int],
                  kind: StepKind = PROPOSE) -> Decision:
        """The step as the experience store records it: the state's and each candidate's features."""
        history = self._move_history(ctx)
        py = [t for p, t in st.files.items() if p.endswith(".py")]
        extra = {
            "sgd": 1.0 if any(re.search(r"\bSGD\(", t) for t in py) else 0.0,
            "n_knobs": math.log1p(sum(1 for k in st.knobs.values() if k.searchable)),
            "n_transforms": float(len(st.regime)),
            "fix": 1.0 if kind == FIX else 0.0,
        }
        state = feats.state_features(ctx, extra)
        cands = [Candidate(features=feats.move_features(self._move_info(st, m, i, history), len(moves)),
                           label=m.title or (m.transform or ""), valid=(i == chosen) if i in tried else None)
                 for i, m in enumerate(moves)]
        return Decision(kind=kind, state=state, candidates=cands, chosen=chosen)

    def _move_info(self, st: ExperimentState, m: Move, rank: int,
                   history: Mapping[str, tuple[int, int, int]]) -> feats.MoveInfo:
        """A move in the fixed vocabularies: its knob's kind (never its name), its factor, its history."""
        kind, factor, key = "", 0.0, ""
        if m.changes:
            key = next(iter(m.changes))
            k = st.knobs.get(key)
            if k is not None:
                kind = k.kind
                new = m.changes[key]
                if is_numeric(new) and is_numeric(k.value) and float(k.value) > 0 and float(new) > 0:
                    factor = float(new) / float(k.value)
        hist_key = f"t:{m.transform}" if m.transform else key
        tried, wins, fails = history.get(hist_key, (0, 0, 0))
        return feats.MoveInfo(source=m.source or ("fix" if m.kind == Kind.FIX else "search"), kind=kind,
                              transform=m.transform or "", pathology=m.pathology, factor=factor,
                              n_changes=len(m.changes), rank=rank, tried=tried, wins=wins, fails=fails)

    def _move_history(self, ctx: PolicyContext) -> dict[str, tuple[int, int, int]]:
        """For each knob (and each transform, as `t:<name>`): the experiments that ran moving it, how many of those
        became the best, and how many failed — from what the tree shows now (results of finished runs only)."""
        exps = {e.id: e for e in ctx.experiments}
        out: dict[str, list[int]] = {}
        for e in ctx.experiments:
            if e.status not in feats.RAN or e.kind in ENGINE_KINDS or e.parent_id not in exps:
                continue
            keys: set[str] = set()
            if e.knobs.get("transform"):
                keys.add(f"t:{e.knobs['transform']}")
            else:
                a, b = self._assignment_of(ctx, e), self._assignment_of(ctx, exps[e.parent_id])
                if a is not None and b is not None:
                    keys |= {k for k in a if k in b and norm_value(a[k]) != norm_value(b[k])}
            for key in keys:
                c = out.setdefault(key, [0, 0, 0])
                c[0] += 1
                c[1] += e.status in feats.WON
                c[2] += e.run_result not in (None, RunResult.SUCCEEDED)
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}

    def search_knobs(self, files: Mapping[str, str], *, command: str = "", metric: str = "",
                     editable: Sequence[str] | None = None, tracked: Sequence[str] = ()) -> list[SearchKnob]:
        """The knobs the search may change in a checkout (`files`: path -> text, the command's files included), in
        the policy's priority order: each setting once, where it takes effect for `command`. For benchmarks that
        search the same space with another method (bench/search.py)."""
        self._forget_checkout()
        st = self._state(_checkout_context(files, command, metric, editable, tracked), None)
        order = {kind: i for i, kind in enumerate(_SEARCH_PRIORITY)}
        out = [SearchKnob(k.key, k.knob, k.space, k.kind) for k in st.knobs.values()
               if k.searchable and k.space is not None]
        out.sort(key=lambda d: (order.get(d.kind, len(order)), d.key))
        self._last_program = st.program
        return out

    def knobs_in(self, files: Mapping[str, str], *, command: str = "", metric: str = "") -> dict[str, PolicyKnob]:
        """Every knob of a checkout (`files`: path -> text) as the policy sees it for `command`: its value, where
        it lives, and whether the search may change it (tests and tools; the policy's own state holds the same)."""
        self._forget_checkout()
        return self._state(_checkout_context(files, command, metric), None).knobs

    def _forget_checkout(self) -> None:
        """Drop the texts read for a bare checkout (cached like a session's baseline, as experiment None)."""
        self._texts = {k: v for k, v in self._texts.items() if k[0] is not None}

    def write_values(self, files: Mapping[str, str], command: str, knobs: Sequence[SearchKnob],
                     values: Mapping[str, Any]) -> tuple[dict[str, str], str]:
        """`files` and `command` with `values` ({knob key: value}) written where each knob lives, exactly as the
        policy writes its own moves (literals in files, values on the command line)."""
        by_key = {k.key: k for k in knobs}
        texts = {**files, eff.COMMAND_PATH: command}
        program = self._last_program
        for key, val in values.items():
            k = by_key[key]
            if k.knob.style == eff.CLI_STYLE:
                if program is None:
                    raise KeyError(key)
                texts[k.knob.path] = eff.rewrite_cli(texts[k.knob.path], k.knob, val, program)
            else:
                texts[k.knob.path] = knobmod.rewrite(texts[k.knob.path], k.knob, val)
        new_command = texts.pop(eff.COMMAND_PATH)
        return texts, new_command

    # ------------------------------------------------------------------------------------------- state
    def _read(self, ctx: PolicyContext, exp_id: int | None, path: str) -> str:
        key = (exp_id, path)
        if key not in self._texts:
            try:
                self._texts[key] = ctx.read_file(exp_id, path) or ""
            except Exception:
                self._texts[key] = ""
        return self._texts[key]

    def _candidate_paths(self, ctx: PolicyContext) -> list[str]:
        out = []
        for p in ctx.editable:
            if (p.endswith(_FILE_EXTS) or posixpath.basename(p) in TASK_FILES) and not matches_any(p, ctx.protected) \
                    and "/." not in "/" + p:
                out.append(p)
        # training code first, configs after; bounded so a huge repository stays fast
        out.sort(key=lambda p: (not p.endswith(".py"), p.count("/"), p))
        return out[:_MAX_FILES]

    def _command_of(self, ctx: PolicyContext, exp_id: int | None) -> str:
        """The command an experiment runs: its own (a command-line setting changed), else the project's."""
        e = next((x for x in ctx.experiments if x.id == exp_id), None) if exp_id is not None else None
        return (e.command if e is not None and e.command else "") or ctx.command

    def _files(self, ctx: PolicyContext, exp_id: int | None) -> tuple[dict[str, str], eff.Program]:
        """The editable files, the files the experiment's command runs or reads, and the command (see
        `ExperimentState`)."""
        files: dict[str, str] = {}
        for p in self._candidate_paths(ctx):
            t = self._read(ctx, exp_id, p)
            if t and len(t) <= _MAX_BYTES:
                files[p] = t
        command = self._command_of(ctx, exp_id)
        program = self._program(ctx, exp_id, command, files)
        for p in sorted((program.run_files or set()) | {c.path for c in program.configs}):
            if p not in files and not matches_any(p, ctx.protected):
                t = self._read(ctx, exp_id, p)
                if t and len(t) <= _MAX_BYTES:
                    files[p] = t
        files[eff.COMMAND_PATH] = command
        return files, program

    def _program(self, ctx: PolicyContext, exp_id: int | None, command: str,
                 files: Mapping[str, str]) -> eff.Program:
        tracked = set(ctx.tracked)

        def read(p: str) -> str:
            return files[p] if p in files else self._read(ctx, exp_id, p)

        def exists(p: str) -> bool:
            return p in tracked if tracked else bool(read(p))

        key = (command, tuple(sorted((p, hash(t)) for p, t in files.items() if p.endswith(".py"))), exp_id)
        hit = self._programs.get(key)
        if hit is None:
            hit = eff.analyse(command, read, exists, sorted(tracked))
            if len(self._programs) > 64:
                self._programs.clear()
            self._programs[key] = hit
        return hit

    def _state(self, ctx: PolicyContext, exp_id: int | None) -> ExperimentState:
        exps = {e.id: e for e in ctx.experiments}
        exp = exps.get(exp_id) if exp_id is not None else None
        files, program = self._files(ctx, exp_id)
        editable = frozenset(self._candidate_paths(ctx))
        evaluation = frozenset(evaluation_functions({p: t for p, t in files.items() if p.endswith(".py")},
                                                    ctx.metric))
        knobs = self._knobs(ctx, files, program, editable, evaluation, self._no_effect(ctx))
        assignment = {k: v.value for k, v in knobs.items()}
        lineage = _lineage(exps, exp_id)
        return ExperimentState(exp=exp, files=files, knobs=knobs, assignment=assignment, regime=_regime(lineage),
                      lineage=lineage, editable=editable, program=program, evaluation=evaluation)

    def _measurement_only(self, py: Mapping[str, str], metric: str) -> frozenset[str]:
        """`edit_guard.measurement_only_options` of a checkout, kept per checkout (it reads every file whole)."""
        if not metric:
            return frozenset()
        key = (metric, *sorted((p, hash(t)) for p, t in py.items()))
        hit = self._measured.get(key)
        if hit is None:
            if len(self._measured) > 64:
                self._measured.clear()
            hit = self._measured[key] = frozenset(measurement_only_options(py, metric))
        return hit

    def _knobs(self, ctx: PolicyContext, files: Mapping[str, str], program: eff.Program,
               editable: frozenset[str], evaluation: frozenset[str],
               no_effect: Mapping[str, str] | None = None) -> dict[str, PolicyKnob]:
        """Every knob of the files and the command line, with whether the search may change it and why not.

        A knob the command does not run or read, or one that a config file or the command line overrides, is shown
        but never changed (`effective.resolve`); one a run already showed to have no effect is dropped, and its
        setting moves to the command line where the program reads one (`effective.virtual_cli_knob`), as does a
        setting whose effective location is not editable.
        """
        code = {p: t for p, t in files.items() if p != eff.COMMAND_PATH}
        raw = discover_knobs(code) + eff.cli_knobs(program)
        res = eff.resolve(program, raw, code)
        py = {p: t for p, t in code.items() if p.endswith(".py")}
        fixed = {p: fixed_lines(t, evaluation) for p, t in py.items()}
        fixed_fns = set(evaluation)
        # under a library's trainer (`spacy train config.cfg`) the library reads the config's keys: whether the
        # repository's own code names a key says nothing of whether it is used
        read_by = {p: t for p, t in code.items() if not p.endswith(".py")} if program.library else code
        # options only the measurement reads (`--crop-pct` of the evaluation's transform, `--threshold`): the edit
        # guard holds them, so a move of one is no trial
        measured = self._measurement_only(py, ctx.metric)
        no_effect = no_effect or {}
        out: dict[str, PolicyKnob] = {}
        virtual: list[knobmod.Knob] = []
        for k in raw:
            key = k.name
            if key in out:
                continue
            kind = k.kind
            space = space_of(k)
            ok, why = may_search(k, kind, space, read_by, fixed, fixed_fns)
            if ok and k.style in ("argparse", "signature", eff.CLI_STYLE) and \
                    re.split(r"[:.]", key)[-1].lstrip("-").replace("-", "_") in measured:
                ok, why = False, "read only by the measurement (the edit guard holds it)"
            if ok and k.style == "env" and re.search(rf"(?:^|[\s;&|(]){re.escape(key[1:])}=", program.command):
                ok, why = False, f"{key[1:]} is set by the command ({key[1:]}=...): the default in the code is not used"
            place = res.why_not(key)
            in_place = k.path in editable or (k.style == eff.CLI_STYLE and k.path == eff.COMMAND_PATH)
            if ok and not place and (not in_place or key in no_effect):
                v = eff.virtual_cli_knob(program, k)  # the setting moves to the command line
                if v is not None:
                    virtual.append(v)
            if ok:
                why = place or no_effect.get(key, "") or ("" if in_place else f"{k.path} is not editable")
                ok = not why
            out[key] = PolicyKnob(key=key, knob=k, kind=kind, space=space, searchable=ok, why_not=why,
                             effective=not place and key not in no_effect)
        for v in virtual:
            if v.name in out:
                continue
            space = space_of(v)
            ok, why = may_search(v, v.kind, space, code, fixed, fixed_fns)
            if ok and v.name in no_effect:
                ok, why = False, no_effect[v.name]
            out[v.name] = PolicyKnob(key=v.name, knob=v, kind=v.kind, space=space, searchable=ok, why_not=why)
        couple_heads(out)
        one_cycle_lengths(out)
        return out

    def _no_effect(self, ctx: PolicyContext) -> dict[str, str]:
        """Knobs whose change made no difference at all: {knob key: why}. A run recorded as "no effect" (its log
        and metric identical to its parent's) changed them; they are not evidence, and not tried again."""
        out: dict[str, str] = {}
        by_id = {e.id: e for e in ctx.experiments}
        for e in ctx.experiments:
            if e.status != NO_EFFECT or e.parent_id is None or e.parent_id not in by_id:
                continue
            a, b = self._assignment_of(ctx, e), self._assignment_of(ctx, by_id[e.parent_id])
            if a is None or b is None:
                continue
            for key in a:
                if key in b and norm_value(a[key]) != norm_value(b[key]):
                    out[key] = f"no effect: #{e.id} changed it and ran exactly like #{e.parent_id}"
        return out

    def _assignment_of(self, ctx: PolicyContext, e: ExperimentView) -> dict[str, Any] | None:
        """The knob assignment an experiment ran with: recorded in its knobs, or read from its files."""
        if e.kind == Kind.RERUN and e.parent_id is not None:
            parent = next((x for x in ctx.experiments if x.id == e.parent_id), None)
            if parent is not None and parent.id != e.id:
                got = self._assignment_of(ctx, parent)
                if got is not None:
                    return got
        rec = {k: v for k, v in e.knobs.items() if k not in ("transform", "fix")}
        if rec:
            return rec
        if e.kind == Kind.BASELINE or e.id == ctx.baseline_id:
            if e.id not in self._assign_cache:
                files, program = self._files(ctx, e.id)
                knobs = self._knobs(ctx, files, program, frozenset(self._candidate_paths(ctx)), frozenset())
                self._assign_cache[e.id] = {k: v.value for k, v in knobs.items()}
            return self._assign_cache[e.id]
        return None

    def _moves_heeding_people(self, ctx: PolicyContext, st: ExperimentState) -> Iterator[Move]:
        """This policy's moves on top of `st` with what people said applied: a move their feedback asked for comes
        first (among the next FEEDBACK_LOOKAHEAD), a change they rejected never comes. Every policy built on this
        one (the learned policy scores these) proposes from this stream, so a rejection holds whichever decides."""
        said = self._rejections(ctx, st)
        moves = self._moves(ctx, st)
        if said.wanted_knobs or said.wanted_transforms:
            head = list(itertools.islice(moves, FEEDBACK_LOOKAHEAD))
            moves = itertools.chain([m for m in head if said.wants(m.changes, m.transform)],
                                    [m for m in head if not said.wants(m.changes, m.transform)], moves)
        moves = (m for m in moves if not said.refuses(m.changes, m.transform, norm_value))
        if ctx.phases:  # an approved plan's phase: only its moves (agent/plan.py)
            return (m for m in moves if phase_of(st, m) in ctx.phases)
        return moves

    def diagnoses(self, ctx: PolicyContext, exp_id: int) -> list[str]:
        """The pathologies of a run's learning curve, most urgent first, as the diagnosis moves read them."""
        e = next((x for x in ctx.experiments if x.id == exp_id), None)
        return [kind for kind, _ in _pathologies(ctx, e)] if e is not None else []

    def foresee(self, ctx: PolicyContext, limit: int = 48) -> list[Foreseen]:
        """The moves this policy could propose next (on top of the best, else the baseline), each with its plan
        phase and predicted duration: what a plan is drafted from (agent/plan.py). Only moves that materialise
        into a proposal count; at most `limit` moves are looked at."""
        exp_id = ctx.best_id if ctx.best_id is not None else ctx.baseline_id
        st = self._state(ctx, exp_id)
        sigs = self._signatures(ctx)
        out: list[Foreseen] = []
        seen: set[str] = set()
        for move in itertools.islice(self._moves_heeding_people(ctx, st), limit):
            prop = self._materialise(ctx, st, move, sigs)
            key = repr(sorted(prop.knobs.items(), key=str)) if prop is not None else ""
            if prop is not None and key not in seen:  # two moves to the same assignment are one run
                seen.add(key)
                out.append(Foreseen(phase=prop.phase, title=prop.title, predicted_s=prop.predicted_s))
        return out

    def _rejections(self, ctx: PolicyContext, st: ExperimentState) -> Rejections:
        """The changes people rejected (knob values that differ from the parent's, or a transformation) and what
        their feedback asked for, as knob keys of `st` and transformation names."""
        if not ctx.rejected_by_user:
            return Rejections()
        exps = {e.id: e for e in ctx.experiments}
        deltas: dict[int, tuple[dict[str, Any], str | None]] = {}
        for exp_id in ctx.rejected_by_user:
            e = exps.get(exp_id)
            if e is None:
                continue
            parent = exps.get(e.parent_id) if e.parent_id is not None else None
            before = (self._assignment_of(ctx, parent) if parent is not None else None) or {}
            after = {k: v for k, v in e.knobs.items() if k not in ("transform", "fix")}
            changed = {k: norm_value(v) for k, v in after.items() if norm_value(before.get(k)) != norm_value(v)}
            deltas[exp_id] = (changed, e.knobs.get("transform"))
        kinds = {k.key: k.kind for k in st.knobs.values()}
        return read_rejections(ctx.rejected_by_user, deltas, kinds, tf.TRANSFORMS)

    def _signatures(self, ctx: PolicyContext) -> set[tuple[frozenset[str], tuple[Any, ...]]]:
        """(regime, assignment) of every experiment so far, whatever its status: never propose one twice."""
        exps = {e.id: e for e in ctx.experiments}
        out = set()
        for e in ctx.experiments:
            a = self._assignment_of(ctx, e)
            if a is None:
                continue
            out.add((_regime(_lineage(exps, e.id)), _sig_assignment(a)))
        return out

    def _repeats_a_clear_loss(self, ctx: PolicyContext, st: ExperimentState,
                              assignment: Mapping[str, Any]) -> int | None:
        """The id of an experiment that made this same one-knob change (the knob from the same value to the same
        value, in the same code regime) on a parent that differs from the current best only in one or two knobs
        that do not move where this knob's optimum lies, and lost to that parent clearly; None if there is none.

        Such a repeat is a run spent to learn what is already known: nanoGPT's learning rate 0.002 → 0.004 lost
        (2.51 against 2.09), `min_lr` changed, and the same raise was proposed on the new best and lost again. A
        change of the batch size, the model's size, the training length, the warm-up, the clipping or the optimizer
        does move the best learning rate (and the best of most knobs), so after one of those the move is fair again.
        "Clearly" is more than three noise floors and more than 5 % of the parent's metric: a loss that size does
        not turn into a gain because of an unrelated nudge."""
        cur = {k: norm_value(v) for k, v in st.assignment.items()}
        new = {k: norm_value(v) for k, v in assignment.items()}
        moved = [k for k in new if k in cur and new[k] != cur[k]]
        if len(moved) != 1 or set(new) != set(cur):
            return None
        key = moved[0]
        exps = {e.id: e for e in ctx.experiments}
        goal = Goal(ctx.goal)
        for e in ctx.experiments:
            parent = exps.get(e.parent_id) if e.parent_id is not None else None
            if (parent is None or e.run_result != RunResult.SUCCEEDED or e.metric is None or parent.metric is None
                    or not math.isfinite(e.metric) or not math.isfinite(parent.metric)):
                continue
            if _regime(_lineage(exps, e.id)) != st.regime:
                continue
            a_e, a_p = self._assignment_of(ctx, e), self._assignment_of(ctx, parent)
            if a_e is None or a_p is None:
                continue
            a_e, a_p = {k: norm_value(v) for k, v in a_e.items()}, {k: norm_value(v) for k, v in a_p.items()}
            if set(a_e) != set(cur) or set(a_p) != set(cur):
                continue
            if a_p[key] != cur[key] or a_e[key] != new[key]:
                continue
            if [k for k in a_e if a_e[k] != a_p[k]] != [key]:
                continue  # not the same one-knob change
            since = [k for k in cur if k != key and cur[k] != a_p[k]]
            if not since or len(since) > 2:
                continue
            if any(k not in st.knobs or st.knobs[k].kind in _MOVES_OPTIMA for k in since):
                continue
            margin = goal.sign * (float(parent.metric) - float(e.metric))
            if margin > max(3 * ctx.noise_floor, 0.05 * abs(float(parent.metric))):
                return e.id
        return None

    # ------------------------------------------------------------------------------------------- moves
    def _moves(self, ctx: PolicyContext, st: ExperimentState) -> Iterator[Move]:
        tried_transforms = _transforms_tried_in_lineage(ctx, st)
        yield from _tagged(self._combine_moves(ctx, st), "combine")
        yield from _tagged(self._compound_moves(ctx, st), "compound")
        yield from _tagged(self._diagnosis_moves(ctx, st, tried_transforms), "diagnosis")
        for name in _TRANSFORM_ORDER:
            if name not in tried_transforms:
                yield Move(title="", rationale="", transform=name, kind=Kind.TRANSFORM, source="transform")
        yield from _tagged(self._rescale_retries(ctx, st), "compound")
        # a tiny layer is widened even when the curve asks for nothing (or there is none to read), after the
        # transforms and blindly only once per width: tried first and again on every new best, it crowded out the
        # transforms that won (measured on the search benchmark, 2026-12-02)
        widen = self._widen_tiny(ctx, st, "")
        if widen is not None:
            (key, _), = widen.changes.items()
            if not any(e.title.startswith(_widen_title(key, st.assignment[key])) for e in ctx.experiments):
                widen.source = "widen"
                yield widen
        yield from _tagged(self._search_moves(ctx, st), "search")

    def _by_kind(self, st: ExperimentState, kind: str) -> list[PolicyKnob]:
        """Searchable knobs of one kind, the ones in Python code before config files, most specific name first."""
        ks = [k for k in st.knobs.values() if k.kind == kind and k.searchable and is_numeric(k.value)]
        def words(k: PolicyKnob) -> set[str]:
            return set(knobmod.name_words(leaf_name(str(k.knob.name))))

        ks.sort(key=lambda k: (leaf_name(str(k.knob.name)).lower() not in _CANON.get(kind, ()),
                               bool(words(k) & _BOUND_WORDS), kind == "steps" and not words(k) & _TOTAL_WORDS,
                               len(k.key)))
        return ks

    def _scaled(self, ctx: PolicyContext, st: ExperimentState, kind: str, factor: float, why: str, diagnosis: str = "",
                expected: str = "") -> Move | None:
        """A move multiplying the first knob of `kind` by `factor` (clipped to its space), or None."""
        for k in self._by_kind(st, kind):
            new = scale_value(k, factor)
            if new is None or searchmod.same(new, k.value):
                continue
            if not self._affordable(ctx, st, {k.key: new}):
                continue
            verb = "raise" if new > k.value else "lower"
            return Move(title=f"{verb} {k.key} from {fmt_value(k.value)} to {fmt_value(new)}", rationale=why,
                         changes={k.key: new}, diagnosis=diagnosis, expected=expected)
        return None

    def _set_value(self, st: ExperimentState, kind: str, value: float, why: str, diagnosis: str = "") -> Move | None:
        for k in self._by_kind(st, kind):
            new = searchmod.clip(value, k.space) if k.space is not None else value
            if k.space is not None and getattr(k.space, "integer", False):
                new = round(new)
            if searchmod.same(new, k.value):
                continue
            return Move(title=f"set {k.key} to {fmt_value(new)} (was {fmt_value(k.value)})", rationale=why,
                         changes={k.key: new}, diagnosis=diagnosis)
        return None

    def _recent_steps(self, ctx: PolicyContext, st: ExperimentState, n: int = 2) -> list[tuple[str, int]]:
        """(knob, direction) of the last `n` one-knob moves that led to the best, newest first."""
        out: list[tuple[str, int]] = []
        for child, parent in zip(st.lineage, st.lineage[1:], strict=False):
            if len(out) >= n or child.kind != Kind.HYPERPARAMETER:
                break
            a, b = self._assignment_of(ctx, child), self._assignment_of(ctx, parent)
            if a is None or b is None:
                break
            diff = [k for k in a if k in b and norm_value(a[k]) != norm_value(b[k])]
            if len(diff) != 1 or not (is_numeric(a[diff[0]]) and is_numeric(b[diff[0]])):
                break
            out.append((diff[0], 1 if a[diff[0]] > b[diff[0]] else -1))
        return out

    def _combine_moves(self, ctx: PolicyContext, st: ExperimentState) -> Iterator[Move]:
        """Two one-knob moves from the best that each scored above it at the same seed, now tried together.

        Each alone was within the noise floor (or it would be the best), but two independent small gains usually add
        up, and together they may clear the floor. Comparing at the same seed removes the seed's share of the noise.
        """
        best = st.exp
        if best is None or best.metric is None or best.run_result != RunResult.SUCCEEDED:
            return
        goal = Goal(ctx.goal)
        ups: dict[str, tuple[float, Any, ExperimentView]] = {}  # knob key -> (gain, value, experiment), best per knob
        for e in ctx.experiments:
            if (e.parent_id != best.id or e.kind != Kind.HYPERPARAMETER or e.run_result != RunResult.SUCCEEDED
                    or e.metric is None or e.seed != best.seed or not math.isfinite(e.metric)):
                continue
            moved = self._one_knob_change(ctx, st, e)
            if moved is None:
                continue
            key, value = moved
            gain = goal.gain(float(e.metric), float(best.metric))
            if gain > 0 and gain > ups.get(key, (0.0, None, None))[0]:
                ups[key] = (gain, value, e)
        ranked = sorted(ups.items(), key=lambda kv: -kv[1][0])
        pairs = [(x, y) for i, x in enumerate(ranked) for y in ranked[i + 1:]]
        pairs.sort(key=lambda p: -(p[0][1][0] + p[1][1][0]))
        for (ka, (ga, va, ea)), (kb, (gb, vb, eb)) in pairs:
            changes = {ka: va, kb: vb}
            if not self._affordable(ctx, st, changes):
                continue
            title = f"combine #{ea.id} and #{eb.id}: {ka} {fmt_value(st.assignment[ka])} → {fmt_value(va)}, " \
                    f"{kb} {fmt_value(st.assignment[kb])} → {fmt_value(vb)}"
            why = (f"Two one-knob changes of #{best.id} each scored above it at the same seed (#{ea.id} {ka}: "
                   f"{fmt_change(ga)}; #{eb.id} {kb}: {fmt_change(gb)}), each within the noise floor "
                   f"({fmt_noise(ctx.noise_floor)}) alone. "
                   "Independent small gains usually add up; together they may clear the floor.")
            yield Move(title=title, rationale=why, changes=changes,
                        expected=f"about {fmt_change(ga + gb)} over #{best.id}")

    def _compound_moves(self, ctx: PolicyContext, st: ExperimentState) -> Iterator[Move]:
        """Capacity with the training length it needs (compound.py): a widening of the best that scored within the
        noise is retried trained longer, and a best reached by adding capacity whose curve still falls is trained
        longer before anything else."""
        best = st.exp
        if best is None or best.metric is None or best.run_result != RunResult.SUCCEEDED:
            return
        lengths = [compound.Length(k.key, k.kind, float(k.value)) for kind in compound.LENGTH_KINDS
                   for k in self._by_kind(st, kind)]

        def scale(key: str, factor: float) -> Any | None:
            return scale_value(st.knobs[key], factor)

        def afford(changes: dict[str, Any]) -> bool:
            return self._affordable(ctx, st, changes)

        tried: set[tuple[str, Any]] = set()  # (capacity knob, value) already run with a longer training on the best
        for e in ctx.experiments:
            a = self._assignment_of(ctx, e) if e.parent_id == best.id else None
            if a is None:
                continue
            longer = any(k in a and is_numeric(a[k]) and a[k] > v.value for v in lengths for k in (v.key,))
            for key, value in a.items():
                if longer and key in st.knobs and st.knobs[key].kind in compound.CAPACITY_KINDS:
                    tried.add((key, norm_value(value)))
        children = []
        for e in sorted(ctx.experiments, key=lambda x: -x.id):
            if (e.parent_id != best.id or e.kind != Kind.HYPERPARAMETER or e.run_result != RunResult.SUCCEEDED
                    or e.seed != best.seed):
                continue
            moved = self._one_knob_change(ctx, st, e)
            if moved is not None:
                key, value = moved
                if (key, norm_value(value)) not in tried:  # retried once already: abandoned
                    children.append((e, key, st.assignment[key], value, st.knobs[key].kind))
        plans = list(compound.retries(best, children, lengths, goal=ctx.goal, noise_floor=ctx.noise_floor,
                                      timeout_s=ctx.timeout_s, scale=scale, afford=afford))
        if len(st.lineage) > 1:
            parent = self._assignment_of(ctx, st.lineage[1])
            added = [(k, parent[k], v) for k, v in st.assignment.items()
                     if parent is not None and k in parent and k in st.knobs
                     and st.knobs[k].kind in compound.CAPACITY_KINDS and is_numeric(v) and is_numeric(parent[k])
                     and v > parent[k]]
            plans += compound.follow(best, added, lengths, goal=ctx.goal, timeout_s=ctx.timeout_s, scale=scale,
                                     afford=afford)
        for p in plans:
            yield Move(title=p.title, rationale=p.rationale, changes=dict(p.changes), expected=p.expected,
                        pathology=p.pathology)

    def _rescale_retries(self, ctx: PolicyContext, st: ExperimentState) -> Iterator[Move]:
        """A rescaling of the inputs (standardisation) tried once and not kept, tried again with the learning rate it
        needs (compound.py): plain SGD's for unit-scale inputs, or as it was where the optimizer became AdamW since."""
        if st.exp is None or st.exp.run_result != RunResult.SUCCEEDED:
            return
        for name, lost in compound.lost_rescalings(st.lineage, ctx.experiments):
            sgd = self._sgd_step(st)
            if sgd is not None:
                knob, momentum = sgd
                unit = compound.SGD_UNIT_STEP * (1.0 - momentum)
                # (not clipped to the knob's search range: that range was centred on a rate tuned for the raw scale)
                new = searchmod.nice(unit, False, knob.kind)
                if not new > float(knob.value):
                    continue  # its learning rate was not small for unit-scale inputs: that is not why it lost
                held = f" with momentum {fmt_value(momentum)}" if momentum else ""
                why = (f"#{lost.id} standardised the inputs and was not kept, at the learning rate plain SGD had been "
                       f"tuned with for the raw inputs' scale ({knob.key} = {fmt_value(knob.value)}). Standardising "
                       "changes the scale of the gradients: where the raw inputs' scale was larger, SGD's steps "
                       "become far too small. Standardised inputs have unit scale, so the change is tried once more "
                       f"with the learning rate such inputs take ({fmt_value(new)}{held}).")
                yield Move(title=f"standardise the inputs with {knob.key} {fmt_value(knob.value)} → {fmt_value(new)} "
                            f"(#{lost.id} again, SGD's step sized for unit-scale inputs)", rationale=why,
                            transform=name, changes={knob.key: new}, kind=Kind.TRANSFORM)
                continue
            switch = compound.adaptive_since(st.lineage, lost)
            if switch is not None:
                why = (f"#{lost.id} standardised the inputs under plain SGD and was not kept; since then #{switch.id} "
                       "switched the optimizer to AdamW, whose steps do not follow the gradients' scale, so the "
                       "change is tried once more on the current best.")
                yield Move(title=f"standardise the inputs (#{lost.id} again, now with AdamW)", rationale=why,
                            transform=name, kind=Kind.TRANSFORM)

    def _sgd_step(self, st: ExperimentState) -> tuple[PolicyKnob, float] | None:
        """The learning-rate knob of the training's plain SGD optimizer and its momentum (None: it does not train
        with plain SGD, its learning rate is not one knob, or its momentum cannot be read)."""
        found = [r for path, text in st.code().items() if path.endswith(".py") and _looks_like_training(text)
                 for r in [tf.TRANSFORMS["sgd_to_adamw"](text, path, evaluation=st.evaluation)] if r is not None]
        if len(found) != 1:
            return None
        knob = _knob_for_expr(st, found[0].exprs.get("lr"), "lr")
        if knob is None or not is_numeric(knob.value) or not float(knob.value) > 0:
            return None
        expr = found[0].exprs.get("momentum")
        if expr is None:
            return knob, 0.0
        held = _knob_for_expr(st, expr, "momentum")
        try:
            momentum = float(held.value) if held is not None else float(expr)
        except (TypeError, ValueError):
            return None
        return (knob, momentum) if 0.0 <= momentum < 1.0 else None

    def _diagnosis_moves(self, ctx: PolicyContext, st: ExperimentState, tried: set[str]) -> Iterator[Move]:
        if st.exp is None:
            return  # no run to diagnose (a plan drafted before the baseline ran: `foresee`)
        recent = self._recent_steps(ctx, st)
        for kind, evidence in _pathologies(ctx, st.exp):
            diag = f"{kind}: {evidence}" if evidence else kind
            for mv in self._remedies(ctx, st, kind, diag, tried):
                if mv is not None and len(mv.changes) == 1 and len(recent) == 2:
                    (key, new), = mv.changes.items()
                    cur = st.assignment.get(key)
                    step = (key, 1 if is_numeric(new) and is_numeric(cur) and new > cur else -1)
                    if all(r == step for r in recent):
                        continue  # the same remedy twice in a row already: give other moves a turn first
                if mv is not None:
                    mv.pathology = kind
                    mv.diagnosis = mv.diagnosis or diag
                    mv.rationale = f"Diagnosis of #{st.exp.id}: {diag}. {mv.rationale}"
                    yield mv

    def _remedies(self, ctx: PolicyContext, st: ExperimentState, kind: str, diag: str,
                  tried: set[str]) -> Iterable[Move | None]:
        """Ordered remedies for one pathology of the best run (generated lazily: the first valid one wins)."""
        sgd = any(re.search(r"\boptim\.SGD\(|\bSGD\(", t) for p, t in st.files.items() if p.endswith(".py"))
        adaptive = not sgd

        def transform(name: str, why: str) -> Move | None:
            if name in tried:
                return None
            return Move(title="", rationale=why, transform=name, kind=Kind.TRANSFORM, diagnosis=diag)

        if kind in ("nan", "diverging"):
            yield self._scaled(ctx, st, "lr", 0.1 if kind == "nan" else 0.3,
                               "The loss blows up, the classic sign of a learning rate too high for this model and "
                               "data; a smaller step keeps the updates inside the region where the loss decreases.",
                               expected="finite, decreasing loss")
            yield transform("grad_clip", "Clipping the gradient norm bounds the size of any single update, which "
                                         "stops a few large gradients from making training diverge.")
            yield self._scaled(ctx, st, "batch_size", 2.0, "Larger batches average out gradient noise, which makes "
                                                           "high-learning-rate training less prone to blow up.")
        elif kind == "too_slow":
            for k in ("epochs", "steps"):
                yield self._scaled(ctx, st, k, 0.5, "The run uses most of its time limit; halving the training "
                                                    "length keeps it safely inside the budget so results are not lost "
                                                    "to timeouts.", expected="run finishes well within the timeout")
            yield self._scaled(ctx, st, "width", 0.5, "A narrower model is cheaper per step; the run is close to "
                                                      "its time limit.")
        elif kind == "underfitting":
            if sgd:
                yield transform("sgd_to_adamw", "The model does not even fit the training data well; plain SGD is "
                                                "slow to converge, and an adaptive optimizer usually fixes that "
                                                "within the same number of steps.")
            yield self._widen_tiny(ctx, st, "The training loss stays high")
            yield from self._deepen(ctx, st, diag, tried)
            yield self._scaled(ctx, st, "lr", 3.0, "The training loss stays high and decreases slowly: the "
                                                   "learning rate is probably too small to make progress in the "
                                                   "steps available.", expected="lower training loss")
            yield self._fewer_big_batches(ctx, st)
            yield transform("standardize", "Badly scaled inputs slow optimisation down; standardising them makes the "
                                           "problem better conditioned.")
            yield self._scaled(ctx, st, "width", 2.0, "The training loss stays high: the model may lack capacity; "
                                                      "a wider layer adds it at a moderate cost.")
            yield self._scaled(ctx, st, "epochs", 2.0, "The training loss is still high at the end; more passes "
                                                       "over the data give the optimizer time to fit.")
            yield self._scaled(ctx, st, "steps", 2.0, "The training loss is still high at the end; more steps "
                                                      "give the optimizer time to fit.")
        elif kind == "still_improving":
            if sgd:
                yield transform("sgd_to_adamw", "The loss is still falling steadily when training stops: optimisation "
                                                "is the bottleneck, and AdamW usually converges much faster than "
                                                "plain SGD in the same number of steps.")
            yield self._fewer_big_batches(ctx, st)
            yield self._widen_tiny(ctx, st, "The loss is still falling when training stops")
            yield self._scaled(ctx, st, "epochs", 2.0, "The loss was still falling when training stopped; training "
                                                       "longer should continue the trend.",
                               expected="lower final loss")
            yield self._scaled(ctx, st, "steps", 2.0, "The loss was still falling when training stopped; more "
                                                      "steps should continue the trend.", expected="lower final loss")
            yield self._scaled(ctx, st, "lr", 2.0, "The loss decreases steadily but slowly; a larger step size "
                                                   "gets further in the same budget.")
        elif kind == "overfitting":
            wd = self._by_kind(st, "weight_decay")
            if wd:
                if not wd[0].value:
                    yield self._set_value(st, "weight_decay", 0.05 if adaptive else 5e-4,
                                          "The held-out metric lags the training loss: the model over-fits; "
                                          "weight decay is the simplest regulariser and is off now.", diag)
                else:
                    yield self._scaled(ctx, st, "weight_decay", 3.0, "The model over-fits: stronger weight decay "
                                                                     "regularises it.")
            else:
                yield transform("weight_decay", "The model over-fits and the optimizer has no weight decay.")
            drop = self._by_kind(st, "dropout")
            if drop:
                if not drop[0].value:
                    yield self._set_value(st, "dropout", 0.1, "The model over-fits; dropout is off, and a little "
                                                              "of it regularises hidden layers.", diag)
                else:
                    yield self._set_value(st, "dropout", min(0.5, float(drop[0].value) + 0.1),
                                          "The model over-fits; more dropout regularises further.", diag)
            else:
                yield transform("dropout", "The model over-fits and has no dropout.")
            if "acc" in ctx.metric.lower():
                yield transform("label_smoothing", "The classifier over-fits; label smoothing is a cheap "
                                                   "regulariser for accuracy.")
            yield self._scaled(ctx, st, "epochs", 0.5, "The held-out metric peaks before the end of training; "
                                                       "stopping earlier keeps the better weights.")
        elif kind == "plateau":
            if _learned_fraction(st.exp) < 0.15:
                # stuck near where it started: the steps are too small (or the optimizer too weak) to get anywhere,
                # which decaying the learning rate cannot fix
                if sgd:
                    yield transform("sgd_to_adamw", "The loss stalls barely below its starting value: plain SGD "
                                                    "with this step size is not getting anywhere; AdamW adapts the "
                                                    "step per parameter and usually escapes such a plateau.")
                yield self._scaled(ctx, st, "lr", 3.0, "The loss stalls barely below its starting value: the step "
                                                       "is too small to make progress; a larger learning rate moves "
                                                       "faster.")
                yield transform("standardize", "The loss stalls near its start; unscaled inputs are a common cause "
                                               "of a stalled first layer.")
            yield transform("warmup_cosine", "The loss flattens early: a constant learning rate stalls; decaying "
                                             "it lets training settle into a lower minimum.")
            yield self._scaled(ctx, st, "lr", 1 / 3, "The loss plateaus early at a high value; a smaller learning "
                                                     "rate may let it descend further.")
            yield self._scaled(ctx, st, "lr", 3.0, "The loss plateaus early; if the step is too small, a larger "
                                                   "learning rate moves faster.")
        elif kind == "noisy":
            yield self._scaled(ctx, st, "lr", 1 / 3, "The loss curve is very noisy; a smaller learning rate "
                                                     "reduces the step-to-step jitter.")
            yield self._scaled(ctx, st, "batch_size", 2.0, "The loss curve is very noisy; larger batches give "
                                                           "less noisy gradients.")
            yield transform("warmup_cosine", "A decaying learning rate damps late-training noise.")

    def _fewer_big_batches(self, ctx: PolicyContext, st: ExperimentState) -> Move | None:
        """Quarter a large batch: four times the updates per epoch for about the same compute on a small model."""
        ks = self._by_kind(st, "batch_size")
        if not ks or not isinstance(ks[0].value, int) or ks[0].value < 256:
            return None
        return self._scaled(ctx, st, "batch_size", 0.25, f"With batches of {ks[0].value} an epoch is only a few "
                                                         "optimizer steps; smaller batches give several times more "
                                                         "updates for about the same compute.",
                            expected="lower loss at the same number of epochs")

    def _widen_tiny(self, ctx: PolicyContext, st: ExperimentState, symptom: str) -> Move | None:
        """Widen a tiny hidden layer (at most `_TINY_WIDTH` units) 4x, or 2x where 4x would not fit the timeout.

        On small models capacity is the cheapest lever there is: a layer of 16-64 units limits what can be fit at
        all, and widening it costs little time, so it comes before tuning the learning rate or the training length
        (on the search benchmark the best MLPs were 4-16x wider than the committed ones). Wider layers are left to
        the later capacity remedies and the knob search.
        """
        for k in self._by_kind(st, "width"):
            if not isinstance(k.value, int) or not 1 <= k.value <= _TINY_WIDTH:
                continue
            for factor in (4.0, 2.0):
                new = scale_value(k, factor)
                if new is None or new <= k.value or not self._affordable(ctx, st, {k.key: new}):
                    continue
                why = (f"{symptom + ', and ' if symptom else ''}{k.key} = {k.value} is a tiny layer: it limits what "
                       f"the model can fit, and at this size widening it {new / k.value:.0f}x costs little time "
                       "(wider models also fit in fewer steps).")
                return Move(title=f"{_widen_title(k.key, k.value)}{new}", rationale=why, changes={k.key: new},
                             expected="lower training loss and a better held-out metric")
        return None

    def _deepen(self, ctx: PolicyContext, st: ExperimentState, diag: str, tried: set[str]) -> Iterator[Move | None]:
        """Depth for a model that under-fits, where its structure is certain (depth.py): a depth knob raised by one,
        else one more hidden layer in a layer-by-layer `nn.Sequential` — once per lineage, as every transform."""
        knob = self._depth_move(ctx, st, +1, "The training loss stays high: one more layer adds capacity (the "
                                             "code builds its layers from this count).", diag)
        if knob is not None:
            yield knob
            return
        if depthmod.NAME not in tried:
            yield Move(title="", rationale="The training loss stays high and the hidden layers are not tiny: depth "
                                            "is the other way to add capacity.", transform=depthmod.NAME,
                        kind=Kind.TRANSFORM, diagnosis=diag)

    def _depth_move(self, ctx: PolicyContext, st: ExperimentState, delta: int, why: str, diag: str) -> Move | None:
        for k in self._by_kind(st, "depth"):
            if not isinstance(k.value, int):
                continue
            new = searchmod.clip(k.value + delta, k.space) if k.space is not None else k.value + delta
            if new == k.value or new < 1 or not self._affordable(ctx, st, {k.key: new}):
                continue
            return Move(title=f"{'deepen' if delta > 0 else 'shallow'}: {k.key} {k.value} → {new}", rationale=why,
                         changes={k.key: new}, diagnosis=diag)
        return None

    def _search_moves(self, ctx: PolicyContext, st: ExperimentState) -> Iterator[Move]:
        """Knob search moves: keeps asking the searcher, marking each suggestion as tried, until it has nothing."""
        dims = self._dims(ctx, st)
        if not dims:
            return
        history = self._history(ctx, st)
        # pattern search: the knob whose one-knob search move from the best was tried last (and lost) gets its
        # other direction first; then knobs never varied yet before ones that were (kind priority within each
        # group): the diagnosis moves have usually probed the learning rate and the training length, and an
        # untried knob tells the most. (A lost *diagnosis* move says its remedy did not help, not that the
        # opposite will: "still improving, raise the learning rate" failing is no case for lowering it.)
        varied = {d.key for d in dims
                  if len({norm_value(o.values.get(d.key)) for o in history if d.key in o.values}) > 1}
        last = self._last_lost_knob(ctx, st)
        dims.sort(key=lambda d: 0 if d.key == last else 1 + (d.key in varied))
        sigs = self._signatures(ctx)
        rejected: list[tuple[Any, ...]] = []
        failed = self._failed_values(ctx)

        def tried(changes: dict[str, Any]) -> bool:
            a = {**st.assignment, **changes}
            sig = _sig_assignment(a)
            if (st.regime, sig) in sigs or sig in rejected or _fails(changes, failed):
                return True
            return not self._affordable(ctx, st, changes)

        kinds = {d.key: d.kind for d in dims}

        def prefer_up(d: searchmod.Dim) -> bool:
            return kinds.get(d.key) not in ("batch_size",)

        for _ in range(64):
            s = searchmod.suggest(history, dims, st.assignment, ctx.rng, tried, prefer_up)
            if s is None:
                return
            rejected.append(_sig_assignment({**st.assignment, **s.changes}))
            desc = ", ".join(f"{k} {fmt_value(st.assignment.get(k))} → {fmt_value(v)}" for k, v in s.changes.items())
            why = _search_rationale(s, dims, len(history))
            yield Move(title=f"{_SEARCH_TITLE}{desc}", rationale=why, changes=dict(s.changes))

    def _failed_values(self, ctx: PolicyContext) -> dict[str, list[tuple[Any, bool]]]:
        """Knob values a one-knob move crashed the run at: {knob: [(value, larger ones too)]}. Only the search's
        history counts runs that produced a metric, and it rejects whole assignments, so after a new best the move
        that crashed (scikit-learn refusing `alpha` 2.7, a batch that ran out of memory, a rate that made the loss
        NaN) came back. Out of memory rules out larger values as well; a timeout or a kill says nothing here."""
        out: dict[str, list[tuple[Any, bool]]] = {}
        by_id = {e.id: e for e in ctx.experiments}
        for e in ctx.experiments:
            if e.status != Status.FAILED or e.parent_id not in by_id or e.failure_class in _NOT_THE_VALUE:
                continue
            a, b = self._assignment_of(ctx, e), self._assignment_of(ctx, by_id[e.parent_id])
            if a is None or b is None:
                continue
            diff = [k for k in a if k in b and norm_value(a[k]) != norm_value(b[k])]
            if len(diff) == 1:
                k = diff[0]
                # after OOM, larger fails too (if it went up)
                up = is_numeric(a[k]) and is_numeric(b[k]) and a[k] > b[k]
                out.setdefault(k, []).append((a[k], e.failure_class == FailureClass.OOM and bool(up)))
        return out

    def _last_lost_knob(self, ctx: PolicyContext, st: ExperimentState) -> str | None:
        """The knob of the newest one-knob search move from the best, if that move did not become the new best."""
        if st.exp is None:
            return None
        kids = [e for e in ctx.experiments if e.parent_id == st.exp.id and e.kind == Kind.HYPERPARAMETER
                and e.title.startswith(_SEARCH_TITLE)]
        for e in sorted(kids, key=lambda e: e.id, reverse=True):
            moved = self._one_knob_change(ctx, st, e)
            if moved is not None:
                return moved[0] if e.status not in (Status.KEPT, Status.UNCONFIRMED) else None
        return None

    def _one_knob_change(self, ctx: PolicyContext, st: ExperimentState, e: ExperimentView) -> tuple[str, Any] | None:
        """(knob, value) when experiment `e` differs from the state's assignment in exactly one known knob."""
        a = self._assignment_of(ctx, e)
        if a is None:
            return None
        diff = [k for k in a if k in st.assignment and norm_value(a[k]) != norm_value(st.assignment[k])]
        return (diff[0], a[diff[0]]) if len(diff) == 1 and diff[0] in st.knobs else None

    def _dims(self, ctx: PolicyContext, st: ExperimentState) -> list[searchmod.Dim]:
        dims = []
        for k in st.knobs.values():
            if not k.searchable or k.space is None:
                continue
            dims.append(searchmod.Dim(key=k.key, space=k.space, kind=k.kind))
        order = {kind: i for i, kind in enumerate(_SEARCH_PRIORITY)}
        dims.sort(key=lambda d: (order.get(d.kind, len(order)), d.key))
        return dims

    def _history(self, ctx: PolicyContext, st: ExperimentState) -> list[searchmod.Observation]:
        exps = {e.id: e for e in ctx.experiments}
        goal = Goal(ctx.goal)
        out = []
        for e in ctx.experiments:
            if e.run_result != RunResult.SUCCEEDED or e.metric is None or not math.isfinite(e.metric):
                continue
            if _regime(_lineage(exps, e.id)) != st.regime:
                continue
            a = self._assignment_of(ctx, e)
            if a is None:
                continue
            out.append(searchmod.Observation(values=a, score=goal.sign * float(e.metric)))
        return out

    # ------------------------------------------------------------------------------------------- cost
    def _affordable(self, ctx: PolicyContext, st: ExperimentState, changes: Mapping[str, Any]) -> bool:
        """Whether a change keeps the predicted run time within ~70% of the timeout, and within the time the
        session's deadline or compute budget leaves (`ctx.time_left_s`; one that does not is listed in `unfit`).
        No estimate: yes."""
        predicted = self.predicted_seconds(ctx, st, changes)
        if predicted is None:
            return True
        if not self._fits(ctx, predicted, ", ".join(f"{leaf_name(k)} → {fmt_value(v)}" for k, v in changes.items())):
            return False
        if not ctx.timeout_s or ctx.timeout_s <= 0:
            return True
        secs = st.exp.seconds if st.exp is not None else None
        return predicted <= (secs or 0.0) or predicted <= 0.7 * ctx.timeout_s

    def _fits(self, ctx: PolicyContext, predicted: float | None, title: str) -> bool:
        """Whether a run predicted to take `predicted` seconds ends in the time left (`ctx.time_left_s`); one that
        cannot is listed in `unfit` under `title`."""
        if ctx.time_left_s is None or predicted is None or predicted <= ctx.time_left_s:
            return True
        if all(t != title for t, _ in self.unfit):
            self.unfit = (*self.unfit, (title, predicted))
        return False

    def predict_seconds(self, ctx: PolicyContext, exp_id: int, changes: Mapping[str, Any]) -> float | None:
        """How long experiment `exp_id`'s run would take with `changes` ({knob key: value}) applied, from the cost
        model of its code corrected by every measured run in `ctx` (None: it has no measured duration)."""
        return self.predicted_seconds(ctx, self._state(ctx, exp_id), changes)

    def predicted_seconds(self, ctx: PolicyContext, st: ExperimentState, changes: Mapping[str, Any]) -> float | None:
        """The run time of the state's experiment with `changes` applied (cost_model.py), None without a
        measured run to start from."""
        secs = st.exp.seconds if st.exp is not None else None
        if not secs or secs <= 0:
            return None
        return self._runtime_model(ctx, st).predict(secs, st.assignment, changes)

    def predict_edits(self, ctx: PolicyContext, exp_id: int | None,
                      edits: Sequence[Edit]) -> tuple[float | None, Pricing | None]:
        """How long experiment `exp_id`'s run would take with `edits` applied (any policy's: a transform, a repair,
        a language model's edit), and how that was found: the model's cost read from the code after the edits over
        its cost before (`Pricing.CODE`), or `Pricing.PARENT` (None seconds) where the code's structure cannot be
        read and the parent's measured time stands; (None, None) when the parent has no measured time."""
        st = self._state(ctx, exp_id)
        if st.exp is None or st.exp.run_result == RunResult.SUCCEEDED:
            return self._predict_edits(ctx, st, edits)
        # a repair of a run that failed: a crash's seconds are not a run's length, so the run is priced from the
        # nearest ancestor that ran to its end, by the cost of its code against the failed code with the repair
        worked = next((a for a in st.lineage[1:] if a.run_result == RunResult.SUCCEEDED and a.seconds), None)
        if worked is None:
            return None, None
        after = self._after(st, edits)
        return (None, Pricing.PARENT) if after is None else self._predict_files(ctx, self._state(ctx, worked.id),
                                                                                after)

    @staticmethod
    def _after(st: ExperimentState, edits: Sequence[Edit]) -> dict[str, str] | None:
        """The state's files with `edits` applied (None when they do not apply)."""
        files = {p: t for p, t in st.files.items() if p != eff.COMMAND_PATH}
        try:
            return {**files, **apply_edits(list(edits), files.get, [*files, *(e.path for e in edits)], [])}
        except Exception:
            return None

    def _predict_edits(self, ctx: PolicyContext, st: ExperimentState,
                       edits: Sequence[Edit]) -> tuple[float | None, Pricing | None]:
        if st.exp is None or st.exp.run_result != RunResult.SUCCEEDED:
            return None, None  # nothing measured to scale (a crash's seconds are not a run's length)
        after = self._after(st, edits)
        return (None, Pricing.PARENT) if after is None else self._predict_files(ctx, st, after)

    def _predict_files(self, ctx: PolicyContext, st: ExperimentState,
                       after: Mapping[str, str]) -> tuple[float | None, Pricing | None]:
        """How long the run of state `st` (one that ran to its end) would take with its files replaced by `after`."""
        secs = st.exp.seconds if st.exp is not None else None
        if not secs or secs <= 0:
            return None, None
        files = {p: t for p, t in st.files.items() if p != eff.COMMAND_PATH}
        batch = next((float(k.value) for k in self._by_kind(st, "batch_size")), float(costmod.DEFAULT_BATCH))
        moved = {k.name: k.value for k in discover_knobs(after)}
        factor = costmod.code_factor([t for p, t in files.items() if p.endswith(".py")],
                                     [t for p, t in after.items() if p.endswith(".py")], batch,
                                     settings_of(st.knobs.values()), settings_of(st.knobs.values(), moved))
        if factor is None:
            return None, Pricing.PARENT
        model = self._runtime_model(ctx, st)
        # what the structure does not show: the training length and the batch size, where the edit moved them
        for key, kn in st.knobs.items():
            if kn.kind not in ("epochs", "steps", "batch_size") or kn.knob.name not in moved:
                continue
            old, new = kn.value, moved[kn.knob.name]
            if is_numeric(old) and is_numeric(new) and float(old) > 0 and float(new) > 0 and new != old:
                factor *= model.factor(key, float(new) / float(old), float(old))
        return model.scaled(secs, factor), Pricing.CODE

    def _runtime_model(self, ctx: PolicyContext, st: ExperimentState) -> costmod.RunTimeModel:
        """The cost model of this state: layer costs read from its Python files, corrected by every run that
        ended with a measured duration (cached for one state)."""
        hit = self._cost_cache
        if hit is not None and hit[0] is st and hit[1] == len(ctx.experiments):
            return hit[2]
        timings = []
        exps = {x.id: x for x in ctx.experiments}
        for e in ctx.experiments:
            if e.run_result != RunResult.SUCCEEDED or not e.seconds or e.seconds <= 0:
                continue
            if _regime(_lineage(exps, e.id)) != st.regime:
                continue  # another code regime may run at another speed
            a = self._assignment_of(ctx, e)
            if a is not None:
                timings.append(costmod.Timing(float(e.seconds), a, e.fixed_s))
        py = [t for p, t in st.files.items() if p.endswith(".py")]
        batch = next((float(k.value) for k in self._by_kind(st, "batch_size")), float(costmod.DEFAULT_BATCH))
        layer_cache: dict[str, list[costmod.Layer]] = {}

        def layers(key: str) -> list[costmod.Layer] | None:
            k = st.knobs.get(key)
            if k is None or not is_numeric(k.value):
                return None
            if key not in layer_cache:
                names = costmod.aliases(py, {leaf_name(str(k.knob.name))})
                layer_cache[key] = costmod.layers(py, names, float(k.value), settings_of(st.knobs.values()))
            return layer_cache[key]

        model = costmod.RunTimeModel(kinds={k: v.kind for k, v in st.knobs.items()}, timings=timings, layers=layers,
                                     batch=batch)
        self._cost_cache = (st, len(ctx.experiments), model)
        return model

    # ------------------------------------------------------------------------------------------- proposals
    def _materialise(self, ctx: PolicyContext, st: ExperimentState, move: Move,
                     sigs: set[tuple[frozenset[str], tuple[Any, ...]]]) -> Proposal | None:
        """Turn a move into a validated Proposal (None if it does not apply, is invalid, or was already tried)."""
        try:
            if move.texts is not None:
                texts: dict[str, str] | None = {**st.files, **move.texts}
                if move.changes:  # a code fix that also moves a knob (half the batch + gradient accumulation)
                    texts = self._rewrite_knobs(texts, st, move.changes)  # type: ignore[arg-type]
                prop = self._finish(ctx, st, texts, move, sigs) if texts is not None else None
            elif move.transform is not None:
                prop = self._transform_proposal(ctx, st, move, sigs)
            else:
                prop = self._knob_proposal(ctx, st, move, sigs)
        except Exception as err:  # a broken move is skipped, never half-proposed
            log.debug("builtin policy: move %r failed: %s", move.title or move.transform, err)
            return None
        if prop is not None:
            prop.phase = str(phase_of(st, move))
        if prop is not None and move.changes and move.texts is None and move.transform is None:
            try:  # the engine's long-run checkpoint reads it; a prediction that fails leaves the parent's duration
                prop.predicted_s = self.predicted_seconds(ctx, st, move.changes)
                prop.priced = Pricing.KNOBS if prop.predicted_s is not None else None
            except Exception as err:
                log.debug("builtin policy: no run-time prediction for %r: %s", prop.title, err)
        elif prop is not None and prop.edits:  # a change of the code: its cost read before and after the edit
            try:
                prop.predicted_s, prop.priced = self._predict_edits(ctx, st, prop.edits)
            except Exception as err:
                log.debug("builtin policy: no run-time prediction for %r: %s", prop.title, err)
        # a run that cannot end in the time left is not proposed (one whose cost could not be read: about its
        # parent's time)
        if prop is not None and not self._fits(ctx, prop.predicted_s or (st.exp.seconds if st.exp else None),
                                               prop.title):
            return None
        return prop

    def _rewrite_knobs(self, texts: dict[str, str], st: ExperimentState,
                       changes: Mapping[str, Any]) -> dict[str, str] | None:
        """`texts` with each knob rewritten where it lives: a literal in its file, or its value on the command line
        (the command is `texts[eff.COMMAND_PATH]`)."""
        texts = dict(texts)
        for key, val in changes.items():
            k = st.knobs.get(key)
            if k is None:
                return None
            text = texts.get(k.path)
            if text is None:
                return None
            try:
                if k.knob.style == eff.CLI_STYLE:
                    if st.program is None:
                        return None
                    new = eff.rewrite_cli(text, k.knob, val, st.program)
                else:
                    new = knobmod.rewrite(text, k.knob, val)  # found again by name: earlier edits do not matter
            except (KeyError, ValueError, TypeError):
                return None
            if new == text:
                return None
            texts[k.path] = new
        return texts

    def _finish(self, ctx: PolicyContext, st: ExperimentState, texts: dict[str, str], move: Move,
                sigs: set[tuple[frozenset[str], tuple[Any, ...]]]) -> Proposal | None:
        edits: list[Edit] = []
        changed = {p: t for p, t in texts.items() if t != st.files.get(p)}
        command = changed.pop(eff.COMMAND_PATH, None)
        if not changed and command is None:
            return None
        for p, t in changed.items():
            if matches_any(p, ctx.protected) or p not in st.editable:
                return None
            edits += tf.diff_edits(p, st.files.get(p, ""), t)
        exp_id = st.exp.id if st.exp is not None else None
        got = apply_edits(edits, lambda p: st.files.get(p) if p in st.files else (self._read(ctx, exp_id, p) or None),
                          ctx.editable, ctx.protected)
        if any(got.get(p) != t for p, t in changed.items()):
            return None
        new_files = {**st.files, **changed}
        program = st.program
        if program is not None and (command is not None or any(p.endswith(".py") for p in changed)):
            new_files[eff.COMMAND_PATH] = command if command is not None else st.command
            program = self._program(ctx, -1, new_files[eff.COMMAND_PATH], new_files)
        if program is None:
            return None
        new_knobs = self._knobs(ctx, new_files, program, st.editable, st.evaluation)
        assignment = {k: v.value for k, v in new_knobs.items()}
        code_fix = move.kind == Kind.FIX and move.transform is None and move.texts is not None
        regime = st.regime | ({f"t:{move.transform}"} if move.transform else set())
        if not code_fix and (frozenset(regime), _sig_assignment(assignment)) in sigs:
            return None  # this exact assignment in this code regime was run (or proposed) already
        if move.transform is None and not code_fix:
            lost = self._repeats_a_clear_loss(ctx, st, assignment)
            if lost is not None:
                log.info("builtin policy: %r repeats #%s, which lost clearly, on a best that differs from its parent "
                         "only in unrelated knobs; not proposed", move.title, lost)
                return None
        if move.transform is None and not code_fix and _effective(new_knobs) == _effective(st.knobs):
            # the change lands only where something else overrides it: it cannot change the run
            log.info("builtin policy: %r changes nothing where it takes effect; not proposed", move.title)
            return None
        knobs: dict[str, Any] = dict(assignment)
        if move.transform:
            knobs["transform"] = move.transform
        elif move.kind == Kind.FIX:
            knobs["fix"] = "code" if code_fix else "knob"
        rationale = move.rationale
        if command is not None:
            rationale += f" The setting lives on the command line, so this experiment runs `{command}`."
        return Proposal(title=move.title, rationale=rationale, expected_effect=move.expected, edits=edits,
                        parent_id=exp_id, kind=move.kind, knobs=knobs, diagnosis=move.diagnosis, command=command)

    def _knob_proposal(self, ctx: PolicyContext, st: ExperimentState, move: Move,
                       sigs: set[tuple[frozenset[str], tuple[Any, ...]]]) -> Proposal | None:
        if not move.changes:
            return None
        if _fails(move.changes, self._failed_values(ctx)):
            log.info("builtin policy: %r sets a value a run already crashed at; not proposed", move.title)
            return None
        changes = aligned_lengths(st, dict(move.changes))
        if changes is None:
            log.info("builtin policy: %r would end training between two evaluations; not proposed", move.title)
            return None
        if changes != move.changes:
            move = Move(title=f"{move.title} (→ {', '.join(f'{k} {fmt_value(v)}' for k, v in changes.items())}: a "
                         "multiple of the evaluation interval)", rationale=move.rationale, changes=changes,
                         transform=move.transform, diagnosis=move.diagnosis, expected=move.expected, kind=move.kind,
                         texts=move.texts)
        linked = linked_lengths(st, changes)
        if linked:
            changes.update(linked)
            names = ", ".join(linked)
            move = Move(title=f"{move.title} (with {names})", rationale=f"{move.rationale} {names} had the same "
                         "value as the training length (a schedule over the whole run) and moves with it.",
                         changes=changes, transform=move.transform, diagnosis=move.diagnosis,
                         expected=move.expected, kind=move.kind, texts=move.texts)
        texts = self._rewrite_knobs(st.files, st, changes)
        if texts is None:
            return None
        return self._finish(ctx, st, texts, move, sigs)

    def _transform_proposal(self, ctx: PolicyContext, st: ExperimentState, move: Move,
                            sigs: set[tuple[frozenset[str], tuple[Any, ...]]]) -> Proposal | None:
        name = move.transform
        assert name is not None
        results = []
        for path, text in st.code().items():
            if not path.endswith(".py") or (name != depthmod.NAME and not _looks_like_training(text)):
                continue  # (a model is often defined apart from the training loop)
            r = tf.TRANSFORMS[name](text, path, evaluation=st.evaluation)
            if r is not None:
                results.append(r)
        if len(results) != 1:
            return None  # none, or several training scripts: ambiguous, leave it to the search
        r = results[0]
        py = {p: t for p, t in st.files.items() if p.endswith(".py")}
        if evaluation_edits(py, {r.path: r.new_text}, ctx.metric):
            return None  # it would touch what measures (a statement the edit guard holds): the engine refuses it
        texts = {**st.files, r.path: r.new_text}
        rationale = r.rationale
        title = r.title
        if name == "sgd_to_adamw":
            moved, note = self._adamw_lr(st, r, texts)
            if moved is None:
                return None
            texts = moved
            rationale += note
            title += f" (lr {fmt_value(ADAMW_LR)})"
        if move.changes:  # knobs that move with the transform (a rescaling's retry: the learning rate)
            moved = self._rewrite_knobs(texts, st, move.changes)
            if moved is None:
                return None
            texts = moved
        if move.rationale and (move.diagnosis or move.source == "compound"):
            rationale = f"{move.rationale} {rationale}"
        mv = Move(title=move.title or title, rationale=rationale, transform=name, diagnosis=move.diagnosis,
                   expected=move.expected or r.expected_effect, kind=Kind.TRANSFORM, changes=dict(move.changes))
        return self._finish(ctx, st, texts, mv, sigs)

    def _adamw_lr(self, st: ExperimentState, r: tf.TransformResult,
                  texts: dict[str, str]) -> tuple[dict[str, str] | None, str]:
        """Give AdamW a learning rate suited to it: through the knob the lr expression reads, or a literal."""
        expr = r.exprs.get("lr")
        knob = _knob_for_expr(st, expr, "lr") if expr else None
        changes: dict[str, Any] = {}
        note = ""
        if knob is not None:
            changes[knob.key] = ADAMW_LR
            note = f" The learning rate knob {knob.key} goes from {fmt_value(knob.value)} (tuned for SGD) to " \
                   f"{fmt_value(ADAMW_LR)}, a robust AdamW default."
            wd_expr = r.exprs.get("weight_decay")
            wd = _knob_for_expr(st, wd_expr, "weight_decay") if wd_expr else None
            if wd is not None and is_numeric(wd.value) and float(wd.value) == 0.0:
                changes[wd.key] = 0.01
                note += f" Weight decay {wd.key} goes from 0 to 0.01 (AdamW's decoupled default)."
        else:
            lit = tf.sgd_to_adamw(st.files[r.path], r.path, lr=ADAMW_LR, evaluation=st.evaluation)
            if lit is None:
                return None, ""
            texts = {**texts, r.path: lit.new_text}
            note = f" The learning rate is set to {fmt_value(ADAMW_LR)}, a robust AdamW default (the SGD value " \
                   "does not transfer)."
        if changes:
            moved = self._rewrite_knobs(texts, st, changes)
            if moved is None:
                return None, ""
            texts = moved
        return texts, note

    # ------------------------------------------------------------------------------------------- fixes
    def _propose_without_best(self, ctx: PolicyContext) -> Proposal | None:
        """Nothing works yet: try a fix for the newest failed experiment that has no child yet."""
        parents = {e.parent_id for e in ctx.experiments}
        failed = [e for e in ctx.experiments if e.run_result not in (None, RunResult.SUCCEEDED)
                  and e.id not in parents and e.kind != Kind.RERUN]
        failed.sort(key=lambda e: e.id, reverse=True)
        for e in failed[:1]:
            try:
                prop = self.fix(ctx, e)
            except Abandon as why:
                log.info("builtin policy: #%s cannot be fixed: %s", e.id, why)
                return None
            if prop is not None:
                return prop
        return None


# ----------------------------------------------------------------------------------------------- helpers

# a schedule's floor or end point (`MIN_LR`, timm's `--min-lr`, `final_lr`) is not the learning rate a "raise the
# learning rate" move means, even where its name is shorter than the base rate's (`TRAIN.MIN_LR` beside `BASE_LR`)
_BOUND_WORDS = frozenset({"min", "minimum", "final", "end", "floor", "last"})
# the training's whole length among counts of steps (`max_steps`, SB3's `total_timesteps`), before a rollout's or a
# schedule's (`n_steps` 2048 in PPO is the rollout: doubling it is not training longer)
_TOTAL_WORDS = frozenset({"total", "max"})
_CANON = {
    "lr": ("lr", "learning_rate", "LEARNING_RATE", "LR"),
    "epochs": ("epochs", "EPOCHS", "num_epochs", "n_epochs", "max_epochs"),
    "batch_size": ("batch_size", "BATCH_SIZE", "bs", "batch-size"),
    "weight_decay": ("weight_decay", "WEIGHT_DECAY", "wd"),
}


def phase_of(st: ExperimentState, m: Move) -> phases.Phase:
    """The plan phase of a move (policy/phases.py's table), from the kinds of the knobs it changes. A learning-rate
    schedule's length (nanoGPT's `lr_decay_iters`) follows the training length it is changed with; changed alone it
    reshapes the schedule, an optimizer move, not longer training."""
    names = [k for k in m.changes if k in st.knobs]
    lengths = [k for k in names if knobmod.schedule_length(k)]
    kinds = [st.knobs[k].kind for k in names if k not in lengths] or (["lr"] if lengths else [])
    return phases.phase_of(str(m.kind), kinds, m.transform)


def _tagged(moves: Iterable[Move], source: str) -> Iterator[Move]:
    """The moves of one part of `_moves`, marked with where they came from (a feature of the decision)."""
    for mv in moves:
        mv.source = mv.source or source
        yield mv


def _lineage(exps: Mapping[int, ExperimentView], exp_id: int | None) -> list[ExperimentView]:
    out: list[ExperimentView] = []
    seen: set[int] = set()
    cur = exps.get(exp_id) if exp_id is not None else None
    while cur is not None and cur.id not in seen:
        out.append(cur)
        seen.add(cur.id)
        cur = exps.get(cur.parent_id) if cur.parent_id is not None else None
    return out


def _regime(lineage: Iterable[ExperimentView]) -> frozenset[str]:
    """The code changes along a lineage: transforms by name, fixes and other code edits by experiment id."""
    out = set()
    for e in lineage:
        if e.knobs.get("transform"):
            out.add(f"t:{e.knobs['transform']}")
        elif e.kind == Kind.TRANSFORM:
            out.add(f"t:{e.title}")
        elif e.kind == Kind.FIX and e.knobs.get("fix") == "knob":
            continue  # a knob value changed, the code did not
        elif e.kind not in (Kind.HYPERPARAMETER, *ENGINE_KINDS):
            out.add(f"f:{e.id}")
    return frozenset(out)


def _checkout_context(files: Mapping[str, str], command: str, metric: str, editable: Sequence[str] | None = None,
                      tracked: Sequence[str] = ()) -> PolicyContext:
    """A context for a bare checkout (`files`), no session: what `search_knobs` and `knobs_in` read."""
    return PolicyContext(root="", metric=metric, goal=Goal.MINIMIZE, editable=list(editable or files), protected=[],
                         experiments=[], best_id=None, baseline_id=None, noise_floor=0.0, brief="", timeout_s=0.0,
                         runs_left=0, read_file=lambda _i, p: files.get(p, ""), rng=random.Random(0),
                         command=command, tracked=list(tracked or files))


def _effective(knobs: Mapping[str, PolicyKnob]) -> tuple[Any, ...]:
    """The values of the knobs that take effect (those not overridden, not in files the command ignores)."""
    return tuple(sorted((k, norm_value(v.value)) for k, v in knobs.items() if v.effective))


# Knob kinds whose change moves where another knob's optimum lies (the learning rate's above all): a one-knob change
# that lost before such a change may win after it.
_MOVES_OPTIMA = frozenset({"batch_size", "width", "depth", "epochs", "steps", "warmup", "clip", "choice", "seq_len",
                           "other"})


# failures that say nothing against a knob's value: the run's time or the machine ran out, or someone stopped it
_NOT_THE_VALUE = frozenset({FailureClass.TIMEOUT, FailureClass.KILLED, FailureClass.INTERRUPTED, FailureClass.LOST,
                            FailureClass.LAUNCH_ERROR, FailureClass.NETWORK, FailureClass.DISK_FULL,
                            FailureClass.PROTECTED_MODIFIED, FailureClass.FORK_STORM, FailureClass.COMPILE_ERROR})


def _fails(changes: Mapping[str, Any], failed: Mapping[str, list[tuple[Any, bool]]]) -> bool:
    """Whether `changes` sets a knob to a value a one-knob move already crashed at (or above it, after OOM)."""
    for key, value in changes.items():
        for bad, larger_too in failed.get(key, ()):
            if searchmod.same(value, bad) or (larger_too and is_numeric(value) and is_numeric(bad) and value >= bad):
                return True
    return False


def _sig_assignment(a: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((str(k), norm_value(v)) for k, v in a.items() if k not in ("transform", "fix")))


def _transforms_tried_in_lineage(ctx: PolicyContext, st: ExperimentState) -> set[str]:
    """Transforms applied in the best's lineage, or already tried (and not kept) on one of its ancestors."""
    ids = {e.id for e in st.lineage}
    out = set()
    for e in ctx.experiments:
        if e.kind != Kind.TRANSFORM:
            continue
        name = str(e.knobs.get("transform", ""))
        if e.id in ids or e.parent_id in ids:
            out.add(name)
    return out


def _looks_like_training(text: str) -> bool:
    return ".backward(" in text or "optim." in text


def _widen_title(key: str, old: Any) -> str:
    """The start of a widening move's title, up to the new value (the blind widening is tried once per width)."""
    return f"widen {key} from {old} to "


def scale_value(k: PolicyKnob, factor: float) -> Any:
    """The knob's value times `factor`, as a nice number in its literal's type, clipped to its search range; an
    integer that would not move moves by one step (a head count for a width split over heads). None: a zero or a
    value below one."""
    v = float(k.value)
    if v == 0:
        return None
    new: Any = searchmod.nice(v * factor, bool(getattr(k.space, "integer", False)) or isinstance(k.value, int),
                              k.kind)
    if k.space is not None:
        new = searchmod.clip(new, k.space)
    if isinstance(k.value, int) and not isinstance(k.value, bool):
        new = round(new)
        if new == k.value:
            step = max(1, getattr(k.space, "multiple", 0) or 1)  # a width split over heads moves by a head count
            new = k.value + (step if factor > 1 else -step)
        if new < 1:
            return None
    return new


def _knob_for_expr(st: ExperimentState, expr: str | None, kind: str) -> PolicyKnob | None:
    """The knob an expression such as `cfg["lr"]`, `args.lr` or `LEARNING_RATE` reads, if it is unambiguous."""
    if not expr:
        return None
    toks = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr.replace("-", "_"))
    strs = re.findall(r"[\"']([^\"']+)[\"']", expr)
    leafs = [*strs, *toks]
    if not leafs:
        return None
    last = (strs[-1] if strs else toks[-1]).replace("-", "_")
    cands = [k for k in st.knobs.values() if leaf_name(str(k.knob.name)).lower() == last.lower() and is_numeric(k.value)
             and k.effective]
    if len(cands) == 1:
        return cands[0]
    of_kind = [k for k in st.knobs.values() if k.kind == kind and is_numeric(k.value) and k.searchable and k.effective]
    if len(of_kind) == 1 and not re.fullmatch(r"[-+.0-9eE]+", expr.strip()):
        return of_kind[0]
    return None


def _pathologies(ctx: PolicyContext, e: ExperimentView) -> list[tuple[str, str]]:
    """(kind, evidence) for the run's learning curve, most urgent first; [] when nothing can be said."""
    loss = list(e.loss_curve)
    val = list(e.curve) or None
    try:
        found = diagnose.curve_pathologies(loss, val, goal=ctx.goal, seconds=e.seconds, timeout_s=ctx.timeout_s)
    except TypeError:
        found = diagnose.curve_pathologies(loss, val)
    except Exception as err:
        log.debug("curve diagnosis failed: %s", err)
        return []
    order = ["nan", "diverging", "overfitting", "too_slow", "underfitting", "still_improving", "plateau", "noisy"]
    out = [(str(p.kind), str(p.evidence or "")) for p in found]
    kinds = {k for k, _ in out}
    if "overfitting" in kinds:  # the held-out metric already got worse: training longer is the wrong remedy
        out = [x for x in out if x[0] != "still_improving"]
    out.sort(key=lambda x: order.index(x[0]) if x[0] in order else len(order))
    return out


def _search_rationale(s: searchmod.Suggestion, dims: list[searchmod.Dim], n: int) -> str:
    kinds = {d.key: d.kind for d in dims}
    parts = []
    for key in s.changes:
        kind = kinds.get(key, "other")
        parts.append(_KIND_WHY.get(kind, f"{key} is a numeric setting of the training code"))
    why = "; ".join(dict.fromkeys(parts))
    if s.method == "coordinate":
        return f"{why}. The diagnoses and known transformations are used up, so the search moves one knob by a " \
               f"factor of about 3 from the best run ({n} comparable results so far): {s.reason}."
    return f"{why}. {s.reason}."


_KIND_WHY = {
    "lr": "The learning rate is the most sensitive hyperparameter of most training runs",
    "epochs": "The number of epochs trades training time for fit",
    "steps": "The number of steps trades training time for fit",
    "batch_size": "The batch size sets the number of updates per epoch and the gradient noise",
    "width": "The width sets the model's capacity",
    "depth": "The depth sets the model's capacity",
    "weight_decay": "Weight decay sets how strongly the model is regularised",
    "dropout": "Dropout sets how strongly the model is regularised",
    "momentum": "Momentum smooths the updates",
    "warmup": "The warm-up length protects the first updates",
}


def _learned_fraction(exp: ExperimentView | None) -> float:
    """How far the training loss fell from its start, as a fraction of the start (1.0 when unknown)."""
    if exp is None:
        return 1.0
    vals = [v for _, v in exp.loss_curve if math.isfinite(v)]
    if len(vals) < 2 or vals[0] == 0:
        return 1.0
    return (vals[0] - vals[-1]) / abs(vals[0])
