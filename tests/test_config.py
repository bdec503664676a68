"""Settings: one table of variables, kept in step with the README and the code."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import VARS, Settings

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\"((?:KEPLER|DISCORD|ANTHROPIC|HOST)_[A-Z_]+)\"")


def test_every_variable_the_code_reads_is_declared():
    declared = {v.env for v in VARS}
    used: set[str] = set()
    for folder in ("bot", "sandbox"):
        for path in (ROOT / folder).rglob("*.py"):
            used |= set(NAME.findall(path.read_text(encoding="utf-8")))
    assert used <= declared, f"undeclared: {sorted(used - declared)}"


def test_readme_lists_every_variable_with_its_default():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for var in VARS:
        assert f"| `{var.env}` |" in readme, f"{var.env} missing from the README's table"


def test_settings_read_the_environment_and_hide_secrets():
    s = Settings.from_env({"KEPLER_DB": "/data/k.db", "DISCORD_TOKEN": "abc.def.ghi"})
    assert s.db == "/data/k.db"
    assert s.discord_token == "abc.def.ghi"
    assert "abc.def.ghi" not in repr(s)
    assert Settings.from_env({}).db == "./kepler.db"
