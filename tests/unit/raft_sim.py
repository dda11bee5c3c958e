"""PySyncObj members ticked by hand over an in-memory network, on a fake clock.

The real SyncObj (PySyncObj 0.3.17) with dex's corrections installed exactly
as the replica installs them (dex.ledger.raft_fixes) and dex's Raft timing
(dex.ledger.replica.raft_timing), but no sockets, no threads and no wall
clock: a test decides when each node ticks, which messages arrive, in what
order, and how much time passes. Messages are pickled on the way, as the TCP
transport does, so no object is shared between nodes.

Invariants: a message is delivered at most once, in the order its sender sent
it; a message to or from a cut-off node is dropped, never delayed.
"""

from __future__ import annotations

import pickle
import struct

import pysyncobj.syncobj as _syncobj
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.transport import Transport

from dex.ledger.raft_fixes import install, raft_correct_journals
from dex.ledger.replica import raft_timing

START_S = 1000.0
ROUNDS_MAX = 10_000
NO_OP = 1  # PySyncObj's _COMMAND_TYPE.NO_OP: entries the state machine ignores


class FakeClock:
    def __init__(self) -> None:
        self.now_s = START_S

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now_s += seconds


class SimTransport(Transport):
    def __init__(self, syncObj, selfNode, otherNodes):  # noqa: N803 (PySyncObj's names)
        super().__init__(syncObj, selfNode, otherNodes)
        self.outbox: list[tuple[str, dict]] = []
        self.peers = {n.id: n for n in otherNodes}

    def tryGetReady(self):  # noqa: N802
        pass

    @property
    def ready(self):
        return True

    def waitReady(self):  # noqa: N802
        pass

    def addNode(self, node):  # noqa: N802
        pass

    def dropNode(self, node):  # noqa: N802
        pass

    def send(self, node, message):
        self.outbox.append((node.id, pickle.loads(pickle.dumps(message))))
        return True


class SimNet:
    def __init__(self, size: int, clock: FakeClock, **conf) -> None:
        assert clock is _syncobj.monotonicTime, "patch pysyncobj.syncobj.monotonicTime with the clock first"
        self.clock = clock
        self.ids = [f"node{i}:{2000 + i}" for i in range(size)]
        self.nodes: dict[str, SyncObj] = {}
        self.cut: set[str] = set()
        self.delivered = 0
        settings = dict(raft_timing(), autoTick=False, appendEntriesUseBatch=False, dynamicMembershipChange=False)
        settings.update(conf)
        for me in self.ids:
            with raft_correct_journals():
                obj = SyncObj(me, [o for o in self.ids if o != me], SyncObjConf(**settings), transportClass=SimTransport)
            install(obj)
            self.nodes[me] = obj
        for obj in self.nodes.values():
            transport = obj._SyncObj__transport
            for peer in transport.peers.values():
                transport._onNodeConnected(peer)

    def __getitem__(self, node_id: str) -> SyncObj:
        return self.nodes[node_id]

    def tick(self, *node_ids: str) -> None:
        for node_id in node_ids or self.ids:
            self.nodes[node_id].doTick(0.0)

    def deliver(self, *senders: str) -> int:
        """Deliver what `senders` (default: everyone) have sent so far, sender
        by sender, each in order. Returns how many messages arrived."""
        arrived = 0
        for sender in senders or self.ids:
            transport = self.nodes[sender]._SyncObj__transport
            outbox, transport.outbox = transport.outbox, []
            for target, message in outbox:
                if sender in self.cut or target in self.cut:
                    continue
                receiver = self.nodes[target]._SyncObj__transport
                receiver._onMessageReceived(receiver.peers[sender], message)
                arrived += 1
        self.delivered += arrived
        return arrived

    def settle(self, rounds_max: int = 100) -> None:
        """Tick everyone and deliver everything until nothing is in flight."""
        for _ in range(rounds_max):
            self.tick()
            if not self.deliver():
                return
        raise AssertionError(f"messages still in flight after {rounds_max} rounds")

    def run_for(self, seconds: float, step_s: float = 0.02, *, until=None) -> bool:
        """Let `seconds` pass in steps, ticking everyone and delivering
        everything at each. Stops early (returning True) once `until()` holds."""
        assert 0 < step_s <= seconds
        for _ in range(min(ROUNDS_MAX, round(seconds / step_s))):
            self.clock.advance(step_s)
            self.tick()
            self.deliver()
            self.deliver()  # the answers too
            if until is not None and until():
                return True
        return False

    def elect(self, seconds: float = 10.0) -> str:
        """Run until exactly one reachable leader; return it."""
        assert self.run_for(seconds, until=lambda: len(self.leaders()) == 1), f"no single leader after {seconds}s"
        return self.leaders()[0]

    def append(self, node_id: str, count: int, size: int) -> None:
        """Put `count` filler entries of `size` bytes at the end of a node's
        log, at its current term: what a leader does with proposals."""
        obj = self.nodes[node_id]
        journal = obj._SyncObj__raftLog
        last = journal[-1][1]
        for k in range(1, count + 1):
            journal.add(filler(size), last + k, obj.raftCurrentTerm)

    # -------------------------------------------------------------- views

    def leaders(self) -> list[str]:
        return [n for n in self.ids if self.nodes[n]._isLeader() and n not in self.cut]

    def log(self, node_id: str) -> list[tuple[int, int]]:
        journal = self.nodes[node_id]._SyncObj__raftLog
        return [(journal[i][1], journal[i][2]) for i in range(len(journal))]


def filler(size: int) -> bytes:
    """A log entry of `size` bytes that PySyncObj's state machine skips."""
    return struct.pack("B", NO_OP) + b"x" * (size - 1)
