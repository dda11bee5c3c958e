"""JSON on the order path: rendered and read by orjson, the same JSON as the
standard library's.

Every signed order is answered with a JSON body, and a forwarded one is
rendered three times over: the leader renders the answer into its channel
frame, the follower reads the frame and renders the body again for its
client. With the standard library that was ~25 µs a forwarded request
(`json.loads` of a row ~14 µs, each `dumps` ~6 µs); orjson does each in 1-2
(docs/BENCHMARKS.md).

Same JSON: orjson writes what `json.dumps(obj, ensure_ascii=False,
separators=(",", ":"))` writes for what dex renders (strings, ints, bools,
None, lists, dicts with str keys). Where orjson refuses (an int outside
[-2^63, 2^64), a non-str key) `dumps` falls back to the standard library.
Reading, orjson takes an integer outside [-2^63, 2^64) for a float; `loads`
sends any body with a run of 19 digits (every such integer has one) to the
standard library, which reads it exactly. The test is a `translate` and a
`find`, ~0.4 µs on an answer row; a regular expression took 5-10.
"""

from __future__ import annotations

import json

import orjson
from starlette.responses import JSONResponse

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19  # each integer orjson cannot read exactly has a run of 19 digits


def dumps(obj) -> bytes:
    """`obj` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # an int past 64 bits, a non-str key: the same JSON, slower
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes):
    """JSON `data` as Python values, integers exact at any size; ValueError if
    it is not JSON."""
    if bytes(data).translate(_DIGITS_AS_ZERO).find(_LONG_DIGITS) < 0:
        return orjson.loads(data)  # orjson.JSONDecodeError is a ValueError
    return json.loads(data)


class JSONBody(JSONResponse):
    """Starlette's JSONResponse, rendered by `dumps`."""

    def render(self, content) -> bytes:
        return dumps(content)
