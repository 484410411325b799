"""Headless Chromium for the report tests: a page is checked as a browser draws it.

A missing browser skips the test with how to install it, and fails it under CI (`CI=true`),
where `.ci/run` installs one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# The network is closed: nothing in the background may try it, and no first-run dialogue.
HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
)


def chromium() -> str:
    found = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    if found is None:
        why = "no Chromium binary on PATH (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI installs it")
        pytest.skip(why)
    return found


def screenshot(page: Path, out: Path, height: int) -> np.ndarray:
    """The page as drawn in an 820-pixel-wide window, as RGB pixels."""
    from PIL import Image

    subprocess.run(
        [
            chromium(),
            *HEADLESS,
            "--hide-scrollbars",
            f"--window-size=820,{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def painted(pixels: np.ndarray, colour: str) -> int:
    """How many pixels are within 3 levels of `colour` (`#rrggbb`)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - rgb).max(axis=-1) <= 3).sum())


def dump_dom(page: Path, *flags: str) -> str:
    """The page's DOM after it ran (with `flags`, e.g. a virtual time budget)."""
    return subprocess.run(
        [chromium(), *HEADLESS, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
