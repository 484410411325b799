"""The encoded bytes of every message type are pinned; see `golden_messages.py` to regenerate."""

from __future__ import annotations

import pytest

from policylink import wire

from .golden_messages import GOLDEN, HEADER, HEADER_FILE, encode_golden, fixture_path
from .message_compare import assert_same


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_encoder_output_matches_golden_bytes(name: str) -> None:
    assert encode_golden(GOLDEN[name]) == fixture_path(name).read_bytes(), (
        f"the encoding of {name} changed; if deliberate, regenerate with "
        "`python -m tests.wire.golden_messages` and bump SCHEMA_VERSION if old peers break"
    )


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_bytes_decode_to_the_canonical_message(name: str) -> None:
    expected = GOLDEN[name]
    decoded = wire.decode_message(expected.MSG_TYPE, fixture_path(name).read_bytes())
    assert_same(decoded, expected)


def test_every_message_type_has_a_golden_fixture() -> None:
    assert {message.MSG_TYPE for message in GOLDEN.values()} == set(wire.MsgType)


def test_header_matches_golden_bytes() -> None:
    assert wire.pack_header(HEADER) == HEADER_FILE.read_bytes()


def test_golden_header_unpacks_to_the_canonical_header() -> None:
    assert wire.unpack_header(HEADER_FILE.read_bytes()) == HEADER
