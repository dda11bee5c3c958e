"""The MAC a follower adds to a request it forwards: the leader skips the
Ed25519 check and the rate limit for it, so it must vouch for nothing but
that exact request."""

from __future__ import annotations

from dex.api.ratelimit import FORWARD_MAC_HEADER, FORWARDED_HEADER, forward_key, forward_mac, is_peer_forward
from dex.auth import signed_payload

KEY = forward_key("s" * 32)
PAYLOAD = signed_payload(1_700_000_000_000, "POST", "/api/v1/order", "", b'{"symbol":"BTCUSDT","quantity":"1"}')


def _headers(mac: str, api_key: str = "aa" * 32, signature: str = "sig==") -> dict:
    return {FORWARDED_HEADER: "n2", FORWARD_MAC_HEADER: mac, "x-api-key": api_key, "x-signature": signature}


def test_a_peer_forward_is_recognised() -> None:
    assert is_peer_forward(KEY, _headers(forward_mac(KEY, "aa" * 32, "sig==", PAYLOAD)), PAYLOAD)


def test_a_captured_mac_vouches_for_no_other_key_body_or_signature() -> None:
    mac = forward_mac(KEY, "aa" * 32, "sig==", PAYLOAD)
    other = signed_payload(1_700_000_000_000, "POST", "/api/v1/order", "", b'{"symbol":"BTCUSDT","quantity":"9"}')
    assert not is_peer_forward(KEY, _headers(mac, api_key="bb" * 32), PAYLOAD)  # someone else's account
    assert not is_peer_forward(KEY, _headers(mac), other)  # another body
    assert not is_peer_forward(KEY, _headers(mac, signature="other=="), PAYLOAD)


def test_without_the_cluster_secret_there_is_no_valid_mac() -> None:
    forged = forward_mac(forward_key("x" * 32), "aa" * 32, "sig==", PAYLOAD)
    assert not is_peer_forward(KEY, _headers(forged), PAYLOAD)
    assert not is_peer_forward(KEY, {**_headers(forward_mac(KEY, "aa" * 32, "sig==", PAYLOAD)), FORWARDED_HEADER: ""}, PAYLOAD)
