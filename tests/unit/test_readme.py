"""The README's tables are derived from the code; this keeps them from drifting."""

from __future__ import annotations

import re
from pathlib import Path

from lameduck.config import SETTINGS, Settings, markdown_table
from lameduck.core.outcome import ExitCode
from lameduck.core.phases import Phase

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_configuration_table_matches_the_settings_table() -> None:
    assert markdown_table() in README, (
        "README configuration table is stale; regenerate it with "
        "`.venv/bin/python -c 'from lameduck.config import markdown_table; print(markdown_table())'`"
    )
    for setting in SETTINGS:
        assert f"`{setting.env}`" in README


def test_budget_block_matches_explain() -> None:
    explained = Settings.load({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).budget().explain()
    assert explained in README


def test_every_exit_code_and_phase_is_documented() -> None:
    rows = dict(re.findall(r"^\| (\d) \| (.+) \|$", README, flags=re.M))
    assert sorted(int(code) for code in rows) == sorted(int(code) for code in ExitCode)
    for phase in Phase:
        assert f"| {phase.value} |" in README
