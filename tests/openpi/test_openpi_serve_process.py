"""`policylink serve` with the OpenPI surface on: one process, both protocols, a key from the
environment, a clean SIGTERM."""

from __future__ import annotations

import re
import signal

import numpy as np
import pytest
import yaml
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import InvalidStatus

from policylink.net.ports import free_port
from tests.server.test_drain import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]


def test_served_process_answers_a_stock_openpi_client_with_the_key_from_the_environment(
    tmp_path, monkeypatch
):
    manifest = tmp_path / "server.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "policy": {
                    "kind": "transformer",
                    "params": {
                        "state_dim": 8,
                        "chunk_size": 10,
                        "cameras": [
                            {"name": "front", "height": 64, "width": 64},
                            {"name": "wrist", "height": 64, "width": 64},
                        ],
                    },
                },
                "warmup_inferences": 1,
                "zenoh": {"listen": [f"tcp/127.0.0.1:{free_port()}"]},
                "openpi": {"enabled": True, "port": 0, "key_map": "libero"},
            }
        )
    )
    monkeypatch.setenv("TEST_OPENPI_KEY", "k3y")
    server = ServerProcess(
        "--manifest", str(manifest), "--set", "openpi.api_key_env=TEST_OPENPI_KEY"
    )
    try:
        startup = server.wait_for_line("policylink serve:")
        port = int(re.search(r"openpi ws://127\.0\.0\.1:(\d+)/", startup).group(1))
        with pytest.raises(InvalidStatus):
            WebsocketClientPolicy("127.0.0.1", port)
        policy = WebsocketClientPolicy("127.0.0.1", port, api_key="k3y")
        reply = policy.infer(
            {
                "observation/state": np.zeros(8),
                "observation/image": np.zeros((64, 64, 3), np.uint8),
                "observation/wrist_image": np.zeros((64, 64, 3), np.uint8),
                "prompt": "stack the blocks",
            }
        )
        policy._ws.close()
        assert reply["actions"].shape == (10, 8) and reply["actions"].dtype == np.float32
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0
    finally:
        server.stop()
