"""The public request-body field checks plugins share (`fulmen.text_field`,
`fulmen.json_field`)."""

import pytest
from fulmen import BadRequest, json_field, text_field


def test_text_field():
    assert text_field({}, "memo", 5) is None
    assert text_field({"memo": ""}, "memo", 5) is None
    assert text_field({"memo": "hello"}, "memo", 5) == "hello"
    for value, message in ((1, "memo must be a string"), ("toolong", "memo is longer than 5 characters")):
        with pytest.raises(BadRequest) as err:
            text_field({"memo": value}, "memo", 5)
        assert err.value.detail == message


def test_json_field_takes_text_or_json():
    assert json_field({}, "body") is None
    assert json_field({"body": '{"a": 1}'}, "body") == '{"a": 1}'
    assert json_field({"body": {"a": [1, 2]}}, "body") == '{"a": [1, 2]}'
    assert json_field({"body": "[1]"}, "body") == "[1]"
    for value, message in (("{not json", "body must be a JSON document"),
                           ("x" * 10_001, "body is longer than 10000 characters")):
        with pytest.raises(BadRequest) as err:
            json_field({"body": value}, "body")
        assert err.value.detail == message


@pytest.mark.parametrize("headers, fragment", [
    ("[1]", "must be a JSON object of header names to string values"),
    ({"X-A": 1}, "must be a JSON object of header names to string values"),
    ({"Host": "internal.example"}, "'Host' cannot be set"),
    ({"Transfer-Encoding": "chunked"}, "'Transfer-Encoding' cannot be set"),
    ({"Bad Name": "x"}, "'Bad Name' cannot be set"),
    ({"X-A": "1\r\nX-B: 2"}, "the value of 'X-A' holds a line break"),
])
def test_json_field_headers_cannot_reframe_the_request(headers, fragment):
    with pytest.raises(BadRequest) as err:
        json_field({"webhook_headers": headers}, "webhook_headers", headers=True)
    assert err.value.detail.startswith("webhook_headers") and fragment in err.value.detail


def test_json_field_headers_accepts_ordinary_headers():
    value = json_field({"h": {"Authorization": "Bearer x", "X-Id": "7"}}, "h", headers=True)
    assert value == '{"Authorization": "Bearer x", "X-Id": "7"}'
