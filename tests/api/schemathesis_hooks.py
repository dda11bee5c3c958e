"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded by the CLI
through SCHEMATHESIS_HOOKS): the wire-error-shape check, and signing.

Signing: when DEX_FUZZ_KEY holds an Ed25519 seed (hex) of a funded account,
every other request is signed with it, over the exact bytes requests sends
(a requests auth object sees the prepared request: final path, query and
body). So the fuzzed bodies of signed routes get past authentication and
reach order validation, the engine and the block builder; the other half
stays unsigned and checks the 401 path.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from urllib.parse import urlsplit

import requests
import schemathesis

from dex.auth import Keypair

FUZZ_KEY_ENV = "DEX_FUZZ_KEY"
_seed = os.environ.get(FUZZ_KEY_ENV)
_keypair = Keypair.from_private(bytes.fromhex(_seed)) if _seed else None
_calls = itertools.count()


class SignRequest(requests.auth.AuthBase):
    """Adds X-API-KEY, X-TIMESTAMP and X-SIGNATURE for the request as sent."""

    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(r.url)
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        r.headers.update(self.keypair.headers(time.time_ns() // 1_000_000, r.method, url.path, url.query, body))
        return r


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if _keypair is not None and next(_calls) % 2 == 0:
        kwargs["auth"] = SignRequest(_keypair)


@schemathesis.check
def error_body_is_code_msg(ctx, response, case):
    """Every 4xx answers a JSON body {"code": int, "msg": str}."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from e
    ok = (
        isinstance(body, dict)
        and isinstance(body.get("code"), int)
        and not isinstance(body.get("code"), bool)
        and isinstance(body.get("msg"), str)
    )
    if not ok:
        raise AssertionError(f"{response.status_code} body is not {{code: int, msg: str}}: {body!r}")
    return None
