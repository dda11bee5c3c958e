"""dex.api.server.HeadWithBody: an answer's head and body in one write (the
transport is a recorder; the loop is a real asyncio loop)."""

from __future__ import annotations

import asyncio

from dex.api.server import HeadWithBody


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 1) if name == "peername" else None


def test_a_head_goes_out_with_its_body_and_alone_by_the_next_turn() -> None:
    async def scenario() -> None:
        t = Recorder()
        w = HeadWithBody(t, asyncio.get_running_loop())
        w.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert t.writes == []
        w.write(b"{}")
        assert t.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")  # a HEAD answer: no body follows
        await asyncio.sleep(0)
        assert t.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]
        w.write(b"HTTP/1.1 503 x\r\n\r\n")
        w.close()  # a held write goes out before the close
        assert t.writes[2:] == [b"HTTP/1.1 503 x\r\n\r\n"] and t.closed
        await asyncio.sleep(0)  # and the scheduled flush writes nothing more
        assert len(t.writes) == 3
        assert w.get_extra_info("peername") == ("127.0.0.1", 1)

    asyncio.run(scenario())
