"""dex.api.jsonbody: orjson's speed, the standard library's JSON and exactness."""

from __future__ import annotations

import json

import pytest

from dex.api.jsonbody import JSONBody, dumps, loads


def stdlib(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


ANSWERS = [
    {"symbol": "BTCUSDT", "orderId": 2**63 + 5, "clientOrderId": "x-AbC_9", "price": "105000.00", "fills": [],
     "status": "FILLED", "blockHeight": 7, "blockHash": "ab" * 32, "postOnly": False, "stp": None},
    {"code": -1013, "msg": "Filter failure: LOT_SIZE, 'é' \u2028 \"quoted\" \\ back"},
    [3, 200, {"a": [1, -2, 0]}, {"Retry-After": "1"}, None],
    {"big": 2**64 - 1, "negative": -(2**63)},
]


@pytest.mark.parametrize("obj", ANSWERS)
def test_the_same_bytes_as_the_standard_library(obj):
    assert dumps(obj) == stdlib(obj)
    assert loads(dumps(obj)) == obj


@pytest.mark.parametrize("obj", [{"x": 2**64}, {"x": -(2**63) - 1}, {"x": [10**40, "s"]}, {1: "non-str key"}])
def test_what_orjson_refuses_is_rendered_by_the_standard_library(obj):
    assert dumps(obj) == stdlib(obj)


@pytest.mark.parametrize("number", [2**64, 10**30, -(2**63) - 1, 2**64 - 1, 12345678901234567890123])
def test_integers_of_any_size_read_back_exactly(number):
    row = [1, 200, {"orderId": number, "id": str(number)}, None, number]
    back = loads(dumps(row))
    assert back == row and type(back[4]) is int and type(back[2]["orderId"]) is int


def test_not_json_is_a_value_error():
    for bad in (b"", b"[1,", b"{'a': 1}", b"\xff\xfe", b"[1] x", b"[" + b"9" * 25 + b","):
        with pytest.raises(ValueError):
            loads(bad)


def test_the_response_renders_with_dumps():
    body = JSONBody({"code": -1008, "msg": "Server is currently overloaded"}, status_code=503, headers={"Retry-After": "1"})
    assert body.body == stdlib({"code": -1008, "msg": "Server is currently overloaded"})
    assert body.status_code == 503 and body.headers["retry-after"] == "1" and body.headers["content-type"] == "application/json"
