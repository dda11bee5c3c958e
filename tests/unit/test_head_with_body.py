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


# ------------------------------------------- wired into a real uvicorn server

async def _app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_a_real_server_answers_pipelined_head_and_get_requests_whole_and_in_order() -> None:
    import uvicorn

    from dex.api.server import BoundedHttpProtocol

    async def scenario() -> None:
        config = uvicorn.Config(_app, host="127.0.0.1", port=0, http=BoundedHttpProtocol, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\nHEAD /c HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # HEAD: no body
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.readexactly(11), 5)
        third = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200") and third.startswith(b"HTTP/1.1 200")
        assert body == b'{"ok":true}'
        # The last answer was a HEAD's, held for a body that never comes: shutting
        # down now must not lose anything already answered.
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing more, nothing torn
        writer.close()

    asyncio.run(scenario())
