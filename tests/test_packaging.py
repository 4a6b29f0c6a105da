"""A wheel (what `pip install .` builds) carries the shipped data, and an installed nightlab finds it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import REPO_ROOT


def _setuptools_too_old() -> str:
    """Why this interpreter cannot build the wheel without build isolation (offline: no isolated build env), or ''."""
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    wanted = next(r for r in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
                  if r.startswith("setuptools"))
    least = tuple(int(x) for x in re.findall(r"\d+", wanted.split(">=")[1])[:1])
    try:
        have = version("setuptools")
    except PackageNotFoundError:
        return f"setuptools is not installed in {sys.executable} (the build needs {wanted})"
    if tuple(int(x) for x in re.findall(r"\d+", have)[:1]) < least:
        return f"setuptools {have} in {sys.executable} is older than the build's {wanted} (PEP 639 license string)"
    return ""


def test_wheel_ships_themes_examples_and_hook(tmp_path: Path) -> None:
    if why := _setuptools_too_old():
        pytest.skip(why)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO_ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("nightlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("nightlab/themes/dark.tcss", "nightlab/themes/light.tcss", "nightlab/examples/spirals/train.py",
                   "nightlab/examples/spirals/data.py", "nightlab/sandbox/instrument/sitecustomize.py",
                   "nightlab/py.typed"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)
    # the license as an SPDX expression (PEP 639), not the table form setuptools stops accepting in 2027
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata.splitlines()

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = (
        "import nightlab, nightlab.agent.demo as c\n"
        "from importlib import resources\n"
        "print(nightlab.__file__)\n"
        "print(c.example_dir() / 'train.py')\n"
        "print(resources.files('nightlab') / 'themes' / 'dark.tcss')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert all(line.startswith(str(target)) for line in out), out
    assert all(Path(p).exists() for p in out), out


# import names whose distribution is named differently, for the check below
_DIST_OF = {"git": "gitpython", "yaml": "pyyaml", "pynvml": "nvidia-ml-py", "mlflow": "mlflow-skinny",
            "sqlite_utils": "sqlite-utils", "tomli_w": "tomli-w"}
# code that runs inside training jobs with the job's own interpreter, never in nightlab's
_JOB_SIDE = ("nightlab/sandbox/instrument/", "nightlab/examples/")


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    import re
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs if not r.startswith("nightlab[")}

    return names(project["dependencies"]), {k: names(v) for k, v in project["optional-dependencies"].items()}


def _imports() -> dict[str, set[str]]:
    """Third-party top-level modules nightlab imports -> 'module' (at import time) and/or 'lazy' (in a function)."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "nightlab").rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel.startswith(_JOB_SIDE):
            continue
        tree = ast.parse(path.read_text())
        lazy: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lazy |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            for m in mods:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top != "nightlab":
                    found.setdefault(top, set()).add("lazy" if id(node) in lazy else "module")
    return found


def test_every_import_is_declared_and_every_dependency_imported() -> None:
    required, extras = _requirements()
    imports = _imports()
    dist = {m: _DIST_OF.get(m, m) for m in imports}
    undeclared = {m for m, d in dist.items() if d not in required and not any(d in e for e in extras.values())}
    assert not undeclared, f"imported but not declared: {sorted(undeclared)}"
    unused = required - set(dist.values())
    assert not unused, f"declared but never imported by nightlab: {sorted(unused)}"


def test_extras_are_imported_lazily() -> None:
    """What an extra provides is imported inside functions only: nightlab starts (and --help answers) without it."""
    required, extras = _requirements()
    imports = _imports()
    for module, how in imports.items():
        d = _DIST_OF.get(module, module)
        if d not in required:
            assert how == {"lazy"}, f"{module} (from an extra) is imported at module level"
    assert {"mlflow", "tensorboard"} <= {m for m in imports}
    # the agent never imports torch (training jobs do, with their own interpreter); `nightlab learn` alone trains
    # the learned policy's scorer with it, imported when that command runs
    assert imports.get("torch", {"lazy"}) == {"lazy"} and extras["learn"] == {"torch"}
    assert _DIST_OF["pynvml"] in required and imports["pynvml"] == {"lazy"}
    assert extras["mlflow"] >= {"mlflow-skinny"} and extras["tensorboard"] == {"tensorboard"}
