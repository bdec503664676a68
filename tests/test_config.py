"""Settings: one typed object, kept in step with the code (both ways) and the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.commands.settings import BEGIN, END
from bot.config import Settings, SettingsError, markdown_table, variables

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\"((?:KEPLER|DISCORD|ANTHROPIC|HOST)_[A-Z_]+)\"")


def _code(exclude: Path | None = None) -> dict[Path, str]:
    return {
        path: path.read_text(encoding="utf-8")
        for folder in ("bot", "sandbox")
        for path in (ROOT / folder).rglob("*.py")
        if path != exclude
    }


def test_every_variable_the_code_reads_is_declared():
    declared = {env for env, _, _ in variables()}
    used: set[str] = set()
    for text in _code().values():
        used |= set(NAME.findall(text))
    assert used <= declared, f"undeclared: {sorted(used - declared)}"


def test_every_declared_setting_is_used():
    config = ROOT / "bot" / "config.py"
    code = _code(exclude=config)
    own = config.read_text(encoding="utf-8")  # config's builders (host_settings, …) use self.x
    unused = []
    for env, name, _info in variables():
        outside = re.compile(rf"\b(?:settings|env)\.{name}\b|\"{env}\"")
        inside = re.compile(rf"\bself\.{name}\b")
        if not (any(outside.search(t) for t in code.values()) or inside.search(own)):
            unused.append(env)
    assert not unused, f"declared but never read: {unused}"


def test_the_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == markdown_table(), "run `uv run kepler settings --readme`"


def test_settings_read_the_environment_typed_and_hide_secrets():
    s = Settings.from_env(
        {"KEPLER_DB": "/data/k.db", "DISCORD_TOKEN": "abc.def.ghi", "KEPLER_VOICE_PER_MINUTE": "3"}
    )
    assert s.db == "/data/k.db"
    assert s.discord_token == "abc.def.ghi"
    assert s.voice_per_minute == 3
    assert "abc.def.ghi" not in repr(s)
    assert Settings.from_env({}).db == "./kepler.db"


def test_a_bad_value_names_the_variable_not_the_value():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KEPLER_CHECK_TIMEOUT": "soon-ish", "KEPLER_SANDBOX_EXPOSURE": "Tunnel"})
    text = str(err.value)
    assert "KEPLER_CHECK_TIMEOUT" in text and "KEPLER_SANDBOX_EXPOSURE" in text
    assert "soon-ish" not in text and "\n" not in text
    with pytest.raises(SettingsError, match="KEPLER_HEALTH_PORT"):
        Settings.from_env({"KEPLER_HEALTH_PORT": "70000"})
