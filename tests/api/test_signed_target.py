"""dex.api.deps.signed_target reads a signed request's path and query from
the raw request when Starlette's URL would change nothing in them, and
otherwise from that URL: either way the very strings the signature has always
been checked against (request.url.path, request.url.query)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from dex.api import deps

# Generated paths and queries lean on the characters URL parsing treats
# specially, beside the plain ones.
_SPECIAL = "?#\\/ \t\r\n%&=+@:;[]é\x00\x7f"
_PATHS = st.text(alphabet=st.sampled_from("abcXYZ019-._~/" + _SPECIAL), max_size=24).map(lambda s: "/" + s)
_QUERIES = st.text(alphabet=st.sampled_from("abcXYZ019-._~=&+%" + _SPECIAL), max_size=40).map(lambda s: s.encode("utf-8"))
_HOSTS = st.sampled_from([b"127.0.0.1:8101", b"localhost", b"[::1]:8101", b"a/b", b"a?b", b"a#b", b"", None])


def _request(path: str, query: bytes, host: bytes | None) -> Request:
    headers = [] if host is None else [(b"host", host)]
    return Request({"type": "http", "method": "POST", "scheme": "http", "server": ("127.0.0.1", 8101),
                    "path": path, "query_string": query, "headers": headers})


@settings(max_examples=400, deadline=None)
@given(path=_PATHS, query=_QUERIES, host=_HOSTS)
def test_it_gives_what_starlettes_url_gives(path: str, query: bytes, host: bytes | None) -> None:
    try:
        expected = (_request(path, query, host).url.path, _request(path, query, host).url.query)
    except UnicodeDecodeError:  # a query that is not UTF-8: Starlette refuses it, and so does signed_target
        with pytest.raises(UnicodeDecodeError):
            deps.signed_target(_request(path, query, host))
        return
    assert deps.signed_target(_request(path, query, host)) == expected


def test_the_client_librarys_requests_take_the_raw_strings(monkeypatch) -> None:
    """What dex.client sends is plain: the URL is never built for it (a
    request object whose URL raises proves it is not read)."""
    request = _request("/api/v1/order", b"symbol=BTCUSDT&side=BUY&type=LIMIT&price=50000.01&quantity=0.001&newClientOrderId=c-1", b"127.0.0.1:8101")
    monkeypatch.setattr(Request, "url", property(lambda self: (_ for _ in ()).throw(AssertionError("URL built"))))
    assert deps.signed_target(request) == ("/api/v1/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&price=50000.01&quantity=0.001&newClientOrderId=c-1")


def test_a_path_or_query_with_a_character_parsing_changes_goes_through_the_url() -> None:
    for path, query in (("/api/v1/order#x", b""), ("/api/v1/order", b"a=1#frag"), ("//api", b""), ("/a\\b", b""), ("/a?b", b"c=1")):
        request = _request(path, query, b"localhost")
        assert deps.signed_target(request) == (request.url.path, request.url.query)
    request = _request("/api/v1/order", b"a=1#frag", b"localhost")
    assert deps.signed_target(request) == ("/api/v1/order", "a=1")  # the fragment cut, as Starlette's URL cuts it


_QUERY_TEXT = st.lists(st.sampled_from(["recvWindow", "recv", "Window", "%57", "%77", "%", "=", "&", "+", ";", "5000", "a", "é", " "]), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(query=_QUERY_TEXT)
def test_recv_window_is_what_starlettes_query_params_give(query: str) -> None:
    from starlette.datastructures import QueryParams

    assert deps.recv_window_param(query) == (QueryParams(query).get("recvWindow") if query else None)


def test_recv_window_is_found_spelled_out_or_percent_encoded() -> None:
    assert deps.recv_window_param("symbol=BTCUSDT&recvWindow=9000") == "9000"
    assert deps.recv_window_param("recv%57indow=7000") == "7000"
    assert deps.recv_window_param("symbol=BTCUSDT&orderId=5") is None
    assert deps.recv_window_param("") is None
