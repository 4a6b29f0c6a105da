from __future__ import annotations

from pathlib import Path

import pytest

from nightlab.agent.config import dump_config, load_config, parse_config
from nightlab.errors import ConfigError


def test_minimal_config_round_trips(tmp_path: Path) -> None:
    cfg = parse_config({"command": "python train.py", "metric": {"name": "acc", "goal": "maximize"}}, "x")
    (tmp_path / "nightlab.toml").write_text(dump_config(cfg))
    again = load_config(tmp_path)
    assert again == cfg
    assert "[search]" not in dump_config(cfg)  # defaults are left out


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('command = "x"\n[metric]\nname = "acc"\ngoal = "up"\n', "metric.goal: Input should be 'maximize' or"),
        ('command = "x"\nfoo = 1\n[metric]\nname = "acc"\ngoal = "maximize"\n', "foo: unknown key"),
        ('command = "x"\n[metric]\nname = "acc"\ngoal = "maximize"\nregex = "acc=.*"\n',
         "metric.regex: Value error, the regex needs a capturing group"),
        ('command = "x"\n[metric]\nname = "acc"\ngoal = "maximize"\nregex = "acc=(["\n', "not a valid regex"),
        ('[metric]\nname = "acc"\ngoal = "maximize"\n', "command: required key is missing"),
        ('command = "x"\ntimeout = -1\n[metric]\nname = "a"\ngoal = "maximize"\n', "timeout: Input should be greater"),
        ('command = "x"\ntimeout = inf\n[metric]\nname = "a"\ngoal = "maximize"\n', "timeout: Input should be a fini"),
        ('command = "x"\ntimeout = nan\n[metric]\nname = "a"\ngoal = "maximize"\n', "timeout: Input should be a fini"),
        ('command = "x"\n[metric]\nname = "a"\ngoal = "maximize"\n[search]\nbudgett = 3\n', "search.budgett: unknown"),
        ('command = "x"\n[metric\n', "not valid TOML"),
    ],
)
def test_invalid_config_names_key_and_file(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "nightlab.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "nightlab.toml") in msg
    assert expected in msg
    assert "\n" not in msg


def test_missing_config_says_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `nightlab init` first"):
        load_config(tmp_path)


def test_pyproject_tool_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.nightlab]\ncommand = "python t.py"\n[tool.nightlab.metric]\nname = "loss"\n'
        'goal = "minimize"\n'
    )
    assert load_config(tmp_path).metric.goal == "minimize"
    (tmp_path / "pyproject.toml").write_text('[tool.nightlab]\ncommand = "python t.py"\nbogus = 2\n'
                                             '[tool.nightlab.metric]\nname = "loss"\ngoal = "minimize"\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml \[tool.nightlab\]: bogus: unknown key"):
        load_config(tmp_path)
