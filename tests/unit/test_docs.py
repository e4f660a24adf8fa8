"""The README stays true: every setting is documented, and the documented commands exist."""

from __future__ import annotations

from pathlib import Path

from scripts import settings_table
from sensevoice_server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_settings_table_is_generated_from_the_settings() -> None:
    for name in Settings.model_fields:
        assert f"`SENSEVOICE_{name.upper()}`" in README, name
        assert f"`--{name.replace('_', '-')}`" in README, name
    assert settings_table.table() in README, "run: python scripts/settings_table.py --write"


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/run-tests.sh" in README
    assert "bash scripts/run-tests.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/run-app.sh" in README and (ROOT / "scripts" / "run-app.sh").exists()
