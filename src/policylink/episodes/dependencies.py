"""The optional libraries episodes need, imported on first use with an error naming the extra.

A robot that never records must not need PyAV or pyarrow installed, so nothing imports them at
module level.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_EXTRAS = {"av": "record", "pyarrow": "record", "pyarrow.parquet": "record", "rerun": "rerun"}


def require(module: str) -> ModuleType:
    """`module`, or an ImportError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module, "record")
        raise ImportError(
            f"{module} is not installed; recording needs it: pip install 'policylink[{extra}]'"
        ) from exc
