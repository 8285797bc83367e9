"""The docs stay true: every setting is documented, no documented setting is stale, and the quick
start names the scripts that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
# Variables that are not settings: the test suite's own (docs/development.md), and the password
# `madoguchi create-admin` reads when it has no terminal.
NOT_SETTINGS = re.compile(rf"{ENV_PREFIX}(TEST_\w*|ADMIN_PASSWORD)")


def _documented_names(text: str) -> set[str]:
    names = set(re.findall(rf"\b{ENV_PREFIX}([A-Z0-9_]+)\b", text))
    return {name for name in names if not NOT_SETTINGS.fullmatch(ENV_PREFIX + name)}


def _section_names(text: str) -> set[str]:
    return set(re.findall(rf"^#+ `?{ENV_PREFIX}([A-Z0-9_]+)`?\s*$", text, flags=re.MULTILINE))


def test_every_setting_has_a_section_in_configuration_md() -> None:
    sections = _section_names(CONFIGURATION.read_text(encoding="utf-8"))
    missing = sorted(
        ENV_PREFIX + name.upper() for name in Settings.model_fields if name.upper() not in sections
    )
    assert not missing, f"add a section for each of these to docs/configuration.md: {missing}"


def test_configuration_md_names_no_stale_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    text = CONFIGURATION.read_text(encoding="utf-8")
    stale = sorted(
        ENV_PREFIX + name for name in _documented_names(text) | _section_names(text) if name not in fields
    )
    assert not stale, f"docs/configuration.md names settings that app.config.Settings lacks: {stale}"


def test_readme_quick_start_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./scripts/demo" in readme
    assert "./scripts/test" in readme


SCRIPTS = ["setup", "demo", "test", "lint", "build-assets"]


@pytest.mark.parametrize("name", [*SCRIPTS, "../.ci/run"])
def test_scripts_are_executable_and_parse(name: str) -> None:
    path = ROOT / "scripts" / name
    assert os.access(path, os.X_OK), f"chmod +x {path.relative_to(ROOT.parent)}"
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(path)], check=True)


def test_scripts_readme_describes_every_script() -> None:
    text = (ROOT / "scripts" / "README.md").read_text(encoding="utf-8")
    for name in SCRIPTS:
        assert f"scripts/{name}`" in text, f"scripts/README.md should describe scripts/{name}"
