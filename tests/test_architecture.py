"""The import contracts in `.importlinter` hold, cover every module, catch wrong-way imports."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists() and os.environ.get("CI") != "true",
    reason="import-linter is not installed in this environment (pip install -e '.[dev]')",
)


def lint(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(CONFIG), "--no-cache"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_source_tree_keeps_every_contract():
    result = lint(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_way_import", "broken"),
    [
        ("wire/errors.py", "import policylink.client.config", "Packages point one way"),
        ("server/core.py", "import policylink.server.surfaces.zenoh", "Server: the app composes"),
        ("server/manifest.py", "import zenoh", "without a network library"),
        ("client/action_queue.py", "import torch", "runs without torch"),
        ("client/control_face.py", "import policylink.client.links.zenoh", "Client: the engines"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path, module, wrong_way_import, broken):
    copy = tmp_path / "src"
    shutil.copytree(REPO / "src" / "policylink", copy / "policylink")
    target = copy / "policylink" / module
    target.write_text(target.read_text() + f"\n{wrong_way_import}  # noqa\n")
    result = lint(copy)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout
    assert "BROKEN" in result.stdout


def test_every_server_and_client_module_is_placed_in_a_layer():
    """A module no layer names escapes the layers contract; a new module must be placed."""
    config = configparser.ConfigParser()
    config.read(CONFIG)
    for package in ("server", "client"):
        section = config[f"importlinter:contract:{package}"]
        named = {
            name.strip()
            for line in section["layers"].split("\n")
            for name in line.replace("|", ":").split(":")
            if name.strip()
        }
        root = REPO / "src" / "policylink" / package
        modules = {
            path.stem if path.parent == root else path.relative_to(root).parts[0]
            for path in root.rglob("*.py")
            if path.name != "__init__.py" or path.parent != root
        }
        assert modules - named == set(), f"add these to the {package} contract: {modules - named}"
