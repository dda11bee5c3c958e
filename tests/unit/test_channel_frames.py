"""The forward channel's frames (dex/api/channel.py), sans IO: a sealed
frame opens only with its connection's key, in its direction, at its place
in the sequence; requests travel byte for byte; malformed frames are refused."""

from __future__ import annotations

import pytest

from dex.api import channel as ch
from dex.api.execute import Answer, Call

KEY = ch.channel_key("s" * 32)
CHALLENGE, NONCE = b"c" * 32, b"n" * 32
CONN = ch.connection_key(KEY, CHALLENGE, NONCE, "n2")
CALL = Call("DELETE", "/api/v1/order", 'symbol=BTCUSDT&origClientOrderId=a"b%22', b'{"\xff\x00}', "ab" * 32, "1700000000000", "c2ln==")


def test_a_frame_opens_with_its_key_direction_and_sequence_only() -> None:
    frame = ch.seal(CONN, ch.TO_LEADER, 1, b"body")

    assert ch.unseal(CONN, ch.TO_LEADER, 1, frame) == b"body"
    with pytest.raises(ch.ChannelError, match="out of sequence"):
        ch.unseal(CONN, ch.TO_LEADER, 2, frame)  # the same frame again, later on its connection
    other = ch.connection_key(KEY, b"d" * 32, NONCE, "n2")  # another connection's challenge
    with pytest.raises(ch.ChannelError, match="bad MAC"):
        ch.unseal(other, ch.TO_LEADER, 1, frame)
    with pytest.raises(ch.ChannelError, match="bad MAC"):
        ch.unseal(CONN, ch.TO_FOLLOWER, 1, frame)  # reflected back to its sender
    with pytest.raises(ch.ChannelError, match="bad MAC"):
        ch.unseal(CONN, ch.TO_LEADER, 1, frame[:-1] + b"!")
    with pytest.raises(ch.ChannelError, match="bad MAC"):
        ch.unseal(ch.connection_key(ch.channel_key("x" * 32), CHALLENGE, NONCE, "n2"), ch.TO_LEADER, 1, frame)  # another secret


def test_the_hello_binds_the_challenge_the_nonce_and_the_node() -> None:
    mac = ch.hello_mac(KEY, CHALLENGE, NONCE, "n2")

    assert mac != ch.hello_mac(KEY, b"d" * 32, NONCE, "n2")
    assert mac != ch.hello_mac(KEY, CHALLENGE, b"m" * 32, "n2")
    assert mac != ch.hello_mac(KEY, CHALLENGE, NONCE, "n3")
    assert CONN != ch.connection_key(KEY, CHALLENGE, NONCE, "n3")


def test_requests_travel_byte_for_byte() -> None:
    body = ch.encode_requests([ch.encode_request(7, CALL), ch.encode_request(8, Call("POST", "/api/v1/order", "", b"", "k", "1", "s"))])

    decoded = ch.decode_requests(body)

    assert decoded[0] == (7, CALL) and decoded[1][0] == 8 and decoded[1][1].body == b""


def test_answers_round_trip() -> None:
    answers = [(7, Answer(200, [{"a": 1}], {"X-DEX-BLOCK-HEIGHT": "9"}, 9)), (8, Answer(503, {"code": -1001, "msg": "m"}, {"Retry-After": "1"}, None))]

    assert ch.decode_answers(ch.encode_answers(answers)) == answers


@pytest.mark.parametrize("body", [
    b"",
    b"\x00\x00",  # no requests
    ch.COUNT.pack(ch.FRAME_REQUESTS_MAX + 1) + ch.encode_request(1, CALL),
    ch.encode_requests([ch.encode_request(1, CALL)])[:-1],  # truncated
    ch.encode_requests([ch.encode_request(1, CALL)]) + b"x",  # trailing bytes
    ch.COUNT.pack(2) + ch.encode_request(1, CALL),  # fewer requests than counted
])
def test_malformed_frames_are_refused(body: bytes) -> None:
    with pytest.raises(ch.ChannelError):
        ch.decode_requests(body)
