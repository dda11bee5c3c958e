"""The browser tests' console check (conftest.Console), as logic: a 503 the
page retried with success is the API working as documented, one it never
got past is a failure, and any other error line is a failure at once."""

from __future__ import annotations

from types import SimpleNamespace

from tests.dashboard.conftest import Console

URL = "http://127.0.0.1:8101/api/v1/order"
LINE = f"console: Failed to load resource: the server responded with a status of 503 (Service Unavailable) ({URL})"


def answer(console: Console, status: int, url: str = URL) -> None:
    console.on_response(SimpleNamespace(status=status, url=url, text=lambda: '{"code":-1008,"msg":"overloaded"}', headers={"retry-after": "1"}))


def test_a_503_retried_with_success_is_not_an_error():
    console = Console()
    answer(console, 503)
    console.add(LINE)
    answer(console, 200)
    assert console.errors == [] and console.unanswered() == []


def test_a_503_never_retried_with_success_is_an_error_that_names_the_refusal():
    console = Console()
    answer(console, 200)  # an earlier success does not count
    answer(console, 503)
    console.add(LINE)
    answer(console, 200, url=URL + "/test")  # nor one at another URL
    (failure,) = console.unanswered()
    assert URL in failure and "-1008" in failure and "Retry-After: 1" in failure


def test_other_errors_fail_at_once_and_allowed_ones_do_not():
    console = Console()
    console.add("console: Failed to load resource: the server responded with a status of 500 (Internal Server Error) (x)")
    console.add("uncaught: TypeError: x is undefined")
    console.allow("refused")
    console.add("console: net::ERR_CONNECTION_REFUSED refused")
    assert len(console.errors) == 2
