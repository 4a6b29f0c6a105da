"""scikit-learn's renamed and removed parameters, from the errors the installed release raises.

scikit-learn deprecates a parameter for two releases, then removes it: the constructor raises `TypeError: X.__init__()
got an unexpected keyword argument 'k'`, or its parameter validation raises `InvalidParameterError: The 'p' parameter
of X must be ... Got 'v' instead.` The tables below map those to the documented replacement; a keyword or value is
rewritten only where it is written literally in the call (a value read from a config file is left to the user).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, call_name, keyword, without_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_sklearn", "repair_sklearn"]

_ENSEMBLES = ("AdaBoostClassifier", "AdaBoostRegressor", "BaggingClassifier", "BaggingRegressor",
              "CalibratedClassifierCV", "RANSACRegressor")
_SGD = ("SGDClassifier", "SGDRegressor", "Perceptron", "PassiveAggressiveClassifier", "PassiveAggressiveRegressor")
# (estimator, removed keyword) -> its new name; removed in scikit-learn 1.2 - 1.6
RENAMED: dict[tuple[str, str], str] = {
    ("OneHotEncoder", "sparse"): "sparse_output",
    **{(e, "base_estimator"): "estimator" for e in _ENSEMBLES},
    ("AgglomerativeClustering", "affinity"): "metric",
    ("FeatureAgglomeration", "affinity"): "metric",
    **{(e, "n_iter"): "max_iter" for e in (*_SGD, "TSNE")},
}
# (estimator, removed keyword) -> the values that dropping it keeps the meaning of (what remains is the default)
DROPPED: dict[tuple[str, str], tuple[object, ...]] = {
    ("LogisticRegression", "multi_class"): ("multinomial", "auto"),
    ("LogisticRegressionCV", "multi_class"): ("multinomial", "auto"),
    ("AdaBoostClassifier", "algorithm"): ("SAMME", "SAMME.R"),
    ("LinearRegression", "normalize"): (False,),
    ("Ridge", "normalize"): (False,),
    ("Lasso", "normalize"): (False,),
}
_REGRESSORS = ("RandomForestRegressor", "ExtraTreesRegressor", "DecisionTreeRegressor", "ExtraTreeRegressor",
               "GradientBoostingRegressor", "BaggingRegressor")
# (parameter, removed value) -> new value; estimator-specific ones first
RENAMED_VALUES: dict[tuple[str | None, str, object], object] = {
    **{(e, "max_features", "auto"): 1.0 for e in _REGRESSORS},
    (None, "max_features", "auto"): "sqrt",
    (None, "penalty", "none"): None,
    (None, "loss", "log"): "log_loss",
    (None, "loss", "deviance"): "log_loss",
    (None, "loss", "binary_crossentropy"): "log_loss",
    (None, "loss", "categorical_crossentropy"): "log_loss",
    (None, "loss", "ls"): "squared_error",
    (None, "loss", "least_squares"): "squared_error",
    (None, "loss", "lad"): "absolute_error",
    (None, "loss", "least_absolute_deviation"): "absolute_error",
    (None, "criterion", "mse"): "squared_error",
    (None, "criterion", "mae"): "absolute_error",
}


def _value_rename(est: str, param: str, value: object) -> tuple[bool, object]:
    for key in ((est, param, value), (None, param, value)):
        if key in RENAMED_VALUES:
            return True, RENAMED_VALUES[key]
    return False, None


def recognise_sklearn(sym: Symptoms) -> Match | None:
    m = sym.says(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
    if m is not None and ((m.group(1), m.group(2)) in RENAMED or (m.group(1), m.group(2)) in DROPPED):
        est, kw = m.group(1), m.group(2)
        if (est, kw) in RENAMED:
            return Match(f"scikit-learn renamed {est}'s {kw}= to {RENAMED[(est, kw)]}= and the installed release no "
                         "longer accepts the old name", {"kind": "rename", "est": est, "kw": kw})
        return Match(f"scikit-learn removed {est}'s {kw}= (what it selected is now the only behaviour)",
                     {"kind": "drop", "est": est, "kw": kw})
    m = sym.says(r"The '(\w+)' parameter of (\w+) must be .*? Got (.+?) instead\.")
    if m is not None:
        try:
            value = ast.literal_eval(m.group(3))
        except (ValueError, SyntaxError):
            return None
        hit, new = _value_rename(m.group(2), m.group(1), value)
        if hit:
            return Match(f"scikit-learn renamed the value {m.group(3)} of {m.group(2)}'s {m.group(1)}= to {new!r}",
                         {"kind": "value", "est": m.group(2), "kw": m.group(1), "old": value, "new": new})
    if sym.says(r"got an unexpected keyword argument 'squared'") is not None and any(
            "mean_squared_error" in (f.code or "") for f in sym.frames[-1:]):
        return Match("scikit-learn removed mean_squared_error(squared=False) in 1.6: root_mean_squared_error "
                     "computes the RMSE", {"kind": "rmse"})
    m = sym.says(r"'(\w+)' object has no attribute 'get_feature_names'")
    if m is not None:
        return Match(f"scikit-learn removed {m.group(1)}.get_feature_names in 1.2 (get_feature_names_out replaces "
                     "it)", {"kind": "feature_names"})
    return None


def _literal(node: cst.BaseExpression) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(cst.Module(body=[]).code_for_node(node))
    except (ValueError, SyntaxError):
        return False, None


def _estimator_calls(src: Source, est: str) -> list[cst.Call]:
    return [c for c in src.calls() if call_name(c).split(".")[-1] == est]


def repair_sklearn(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    kind = match.facts["kind"]
    texts: dict[str, str] = {}
    count = 0
    for path, text in site.python().items():
        src = Source(path, text)
        if not src.ok:
            continue
        n = 0
        if kind in ("rename", "drop", "value"):
            est, kw = str(match.facts["est"]), str(match.facts["kw"])
            for c in _estimator_calls(src, est):
                a = keyword(c, kw)
                if a is None:
                    continue
                if kind == "rename":
                    src.replace(a.keyword, cst.Name(RENAMED[(est, kw)]))  # type: ignore[arg-type]
                    n += 1
                    continue
                ok, value = _literal(a.value)
                if not ok:
                    continue
                if kind == "drop" and value in DROPPED[(est, kw)]:
                    src.replace(c, without_keyword(c, kw))
                    n += 1
                elif kind == "value" and value == match.facts["old"]:
                    src.replace(a.value, cst.parse_expression(repr(match.facts["new"])))
                    n += 1
        elif kind == "rmse":
            for c in src.calls():
                a = keyword(c, "squared")
                if call_name(c).split(".")[-1] != "mean_squared_error" or a is None:
                    continue
                ok, value = _literal(a.value)
                if not ok:
                    continue
                new = without_keyword(c, "squared")
                if value is False:
                    name = call_name(c)
                    head = name.rpartition(".")[0]
                    if not head and not src.ensure_from_import("sklearn.metrics", "root_mean_squared_error"):
                        continue
                    func = cst.parse_expression(f"{head + '.' if head else ''}root_mean_squared_error")
                    new = new.with_changes(func=func)
                src.replace(c, new)
                n += 1
        elif kind == "feature_names":
            for c in src.calls():
                if isinstance(c.func, cst.Attribute) and c.func.attr.value == "get_feature_names":
                    src.replace(c.func.attr, cst.Name("get_feature_names_out"))
                    n += 1
        new_text = src.render() if n else None
        if new_text is not None:
            texts[path] = new_text
            count += n
    if not texts:
        return
    if kind == "rename":
        title = f"{match.facts['est']}({match.facts['kw']}=...) -> {RENAMED[(match.facts['est'], match.facts['kw'])]}="
    elif kind == "drop":
        title = f"drop {match.facts['est']}'s removed {match.facts['kw']}="
    elif kind == "value":
        title = f"{match.facts['est']}({match.facts['kw']}={match.facts['old']!r}) -> {match.facts['new']!r}"
    elif kind == "rmse":
        title = "mean_squared_error(squared=False) -> root_mean_squared_error"
    else:
        title = "get_feature_names() -> get_feature_names_out()"
    yield Fix(title=f"{title} (scikit-learn API change)",
              rationale=f"The run failed because {match.diagnosis}. The call is rewritten to the current API, which "
                        f"computes the same ({count} place(s) in {', '.join(texts)}).", texts=texts)

