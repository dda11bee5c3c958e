"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded by the CLI
through SCHEMATHESIS_HOOKS): the wire-error-shape check."""

from __future__ import annotations

import json

import schemathesis


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
