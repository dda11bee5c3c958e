"""The leader answers the requests of a forwarded frame that it refuses at
once (admission, translation) in their own answer frame, before the frame's
accepted requests commit (dex/api/channel.py, ChannelServer._execute;
dex/api/execute.py, execute_many's `early`): under overload a shed request
had waited for the rest of its frame's block.

The leader's side runs for real (sealing, sequence numbers, execute_many);
the node around it is a stand-in: a port whose block never commits until
the test says so, and a translator that makes one command a request."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from dex.api import channel as ch
from dex.api import execute as ex
from dex.api.errors import OVERLOADED
from dex.api.execute import Answer, Call
from dex.ledger.port import Overloaded, _refused_now

SECRET = "s" * 32


def call(body: bytes) -> Call:
    return Call("POST", "/api/v1/order", "", body, "k", "1", "s")


class Port:
    """Submits each request: the first kind waits for a block the test
    commits; a request whose commands say "shed" is refused by admission."""

    leader_id = "n1"

    def __init__(self) -> None:
        self.block: asyncio.Future | None = None

    def submit_many(self, requests: list) -> list:
        loop = asyncio.get_running_loop()
        self.block = loop.create_future()
        return [
            _refused_now(loop, Overloaded("shed", 1, 0.2)) if commands == ["shed"] else self.block
            for commands, _ in requests
        ]


class Socket:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.sent = asyncio.Event()

    async def send_bytes(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.sent.set()


def _server(monkeypatch, port: Port) -> ch.ChannelServer:
    node = SimpleNamespace(cfg=SimpleNamespace(secret=lambda: SECRET, nodes=[SimpleNamespace(id="n1"), SimpleNamespace(id="n2")]),
                           node_id="n1", port=port)
    monkeypatch.setattr(ch, "verify_call", lambda node, call, peer: call.body)
    monkeypatch.setattr(ex, "prepare", lambda node, signed, call: ex.Prepared(
        [signed.decode()], None, lambda applied: Answer(200, {"height": applied})))
    return ch.ChannelServer(node)


def _opened(frames: list[bytes]) -> list[list[tuple[int, Answer]]]:
    return [ch.decode_answers(ch.unseal(b"k" * 32, ch.TO_FOLLOWER, seq, frame)) for seq, frame in enumerate(frames, 1)]


def test_a_shed_request_is_answered_before_the_rest_of_its_frame_commits(monkeypatch) -> None:
    async def scenario() -> None:
        port = Port()
        server = _server(monkeypatch, port)
        ws, state = Socket(), ch._Served(b"k" * 32)
        state.executing = 1
        frame = [(1, call(b"accepted")), (2, call(b"shed")), (3, call(b"accepted"))]
        task = asyncio.create_task(server._execute(ws, state, frame))
        await asyncio.wait_for(ws.sent.wait(), 2)

        first = _opened(ws.frames)
        assert [[i for i, _ in answers] for answers in first] == [[2]]  # the shed one, alone, while the block is pending
        answer = first[0][0][1]
        assert answer.status == 503 and answer.payload["code"] == OVERLOADED
        assert not task.done() and state.executing == 1  # the frame is not answered in full

        port.block.set_result(7)
        await asyncio.wait_for(task, 2)
        frames = _opened(ws.frames)
        assert [[i for i, _ in answers] for answers in frames] == [[2], [1, 3]]  # each request answered once
        assert [a.status for _, a in frames[1]] == [200, 200] and state.executing == 0

    asyncio.run(scenario())


def test_a_frame_refused_or_accepted_whole_is_answered_in_one_frame(monkeypatch) -> None:
    async def scenario() -> None:
        for bodies, statuses in (([b"shed", b"shed"], [503, 503]), ([b"accepted", b"accepted"], [200, 200])):
            port = Port()
            server = _server(monkeypatch, port)
            ws, state = Socket(), ch._Served(b"k" * 32)
            state.executing = 1
            task = asyncio.create_task(server._execute(ws, state, [(i, call(b)) for i, b in enumerate(bodies, 1)]))
            await asyncio.sleep(0)
            if port.block is not None and not port.block.done():
                port.block.set_result(7)
            await asyncio.wait_for(task, 2)
            frames = _opened(ws.frames)
            assert len(frames) == 1 and [a.status for _, a in frames[0]] == statuses

    asyncio.run(scenario())


@pytest.mark.parametrize("known", [[], [(0, Answer(400, {"code": -1, "msg": "bad"}))]])
def test_execute_many_gives_early_answers_only_while_others_wait(monkeypatch, known) -> None:
    """No call when nothing waits (the answers come back at once anyway)."""
    async def scenario() -> None:
        port = Port()
        node = SimpleNamespace(port=port)
        calls: list = []
        monkeypatch.setattr(ex, "prepare", lambda node, signed, call: (
            Answer(400, {"code": -1, "msg": "bad"}) if signed == "bad" else ex.Prepared([signed], None, lambda applied: Answer(200, {}))))
        items = [("bad", call(b""))] if known else []
        items += [("shed", call(b""))]
        answers = await ex.execute_many(node, items, calls.append)
        assert calls == [] and [a.status for a in answers] == [400] * len(known) + [503]

    asyncio.run(scenario())
