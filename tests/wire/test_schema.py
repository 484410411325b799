"""Schema negotiation at session open: the highest common version, or who must upgrade."""

from __future__ import annotations

import pytest

from policylink import wire


def test_the_current_version_lies_in_the_supported_range() -> None:
    assert wire.SCHEMA_MIN <= wire.SCHEMA_VERSION <= wire.SCHEMA_MAX


def test_identical_ranges_agree_on_their_highest_version() -> None:
    assert wire.negotiate_schema(1, 3, 1, 3) == 3


def test_overlapping_ranges_agree_on_the_highest_common_version() -> None:
    assert wire.negotiate_schema(2, 5, 1, 3) == 3
    assert wire.negotiate_schema(1, 3, 2, 5) == 3


def test_a_single_shared_version_is_chosen() -> None:
    assert wire.negotiate_schema(1, 2, 2, 4) == 2


def test_server_defaults_to_its_own_supported_range() -> None:
    assert wire.negotiate_schema(wire.SCHEMA_MIN, wire.SCHEMA_MAX) == wire.SCHEMA_MAX


def test_a_client_older_than_the_server_is_told_to_upgrade() -> None:
    with pytest.raises(wire.SchemaError, match=r"client speaks \[1, 2\].*upgrade the client"):
        wire.negotiate_schema(1, 2, 3, 4)


def test_a_server_older_than_the_client_is_told_to_upgrade() -> None:
    with pytest.raises(wire.SchemaError, match=r"server speaks \[1, 2\]; upgrade the server"):
        wire.negotiate_schema(3, 4, 1, 2)


def test_an_empty_client_range_is_refused() -> None:
    with pytest.raises(wire.SchemaError, match=r"client schema range \[3, 1\] is empty"):
        wire.negotiate_schema(3, 1)


def test_an_empty_server_range_is_refused() -> None:
    with pytest.raises(wire.SchemaError, match=r"server schema range \[2, 1\] is empty"):
        wire.negotiate_schema(1, 2, 2, 1)


def test_schema_errors_carry_the_unsupported_schema_code() -> None:
    with pytest.raises(wire.SchemaError) as caught:
        wire.negotiate_schema(5, 6, 1, 2)
    assert caught.value.code is wire.ErrorCode.UNSUPPORTED_SCHEMA
