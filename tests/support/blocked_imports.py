"""A fresh interpreter whose import system refuses the packages a test names.

An accidental top-level import of a heavy package anywhere on the robot's path then fails the
test that runs it here, not a deployment on a Raspberry Pi.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_BLOCKER = """
import sys

BLOCKED = {blocked!r}
refused = []


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            refused.append(name)
            raise ImportError(f"{{name}} is blocked for this test")
        return None


sys.meta_path.insert(0, Refuse())
"""


def run_blocking(blocked: tuple[str, ...], code: str, cwd: Path) -> str:
    """stdout of `code`, which may read `refused` (the imports refused so far); fails the test
    with the program's stderr when it exits non-zero."""
    program = _BLOCKER.format(blocked=blocked) + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
