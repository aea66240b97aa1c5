"""Parsing node answers: amounts and byte fields in the shapes nodes send."""

from __future__ import annotations

import base64

import pytest
from fulmen.funding.http import NodeAnswerError, as_int, hash32_hex


def test_as_int_reads_the_shapes_nodes_send():
    assert as_int("9223372036854775807") == 2**63 - 1  # LND's int64 as a JSON string
    assert as_int(" 1500msat ") == 1500
    assert as_int(1500) == 1500 and as_int(1500.0) == 1500
    assert as_int("") is None and as_int(None, 0) == 0 and as_int(True, 7) == 7


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1.5, "1.5", "12sat", []])
def test_as_int_refuses_what_is_not_a_whole_number(value):
    # json.loads accepts NaN and Infinity; none may crash or be rounded
    assert as_int(value) is None


def test_hash32_hex_takes_hex_or_base64_and_checks_length():
    raw = bytes(range(32))
    assert hash32_hex(raw.hex(), "h") == raw.hex()
    assert hash32_hex(base64.b64encode(raw).decode(), "h") == raw.hex()
    assert hash32_hex(base64.urlsafe_b64encode(raw).decode(), "h") == raw.hex()
    with pytest.raises(NodeAnswerError):
        hash32_hex(base64.b64encode(raw[:31]).decode(), "h")
