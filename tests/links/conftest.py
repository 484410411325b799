"""Real links need network namespaces: tests that use `namespaces_allowed` skip, saying why,
where the kernel refuses them, and fail instead under CI (`.ci/run` installs iproute2, and CI
runs as root). The proxy's own tests need nothing but loopback."""

from __future__ import annotations

import os

import pytest

from policylink.net.netpath import netpath_refusal


@pytest.fixture
def namespaces_allowed() -> None:
    refusal = netpath_refusal()
    if refusal is None:
        return
    why = f"no real link on this machine: {refusal}"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)
