"""The Raft port's bounds (dex/ledger/transport.py), over real sockets.

The attacks on a running cluster are in tests/cluster/test_raft_port.py; here,
the derivation of the message bound against PySyncObj's real encoding, and
the connect timeout against a peer whose SYNs are dropped.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time
import zlib

import pysyncobj.pickle as raft_pickle
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.encryptor import getEncryptor

from dex.ledger.codec import PROPOSAL_INFLATED_BYTES_MAX
from dex.ledger.transport import (
    APPEND_ENTRIES_BATCH_BYTES,
    CONNECT_TIMEOUT_S,
    ENTRY_PICKLE_OVERHEAD_BYTES,
    HANDSHAKE_MESSAGE_BYTES_MAX,
    MESSAGE_BYTES_MAX,
    PICKLE_PROTOCOL,
    RAFT_ENTRY_BYTES_MAX,
    RaftConnection,
    RaftTransport,
    Refusals,
    _UNDECODABLE,
    encode_message,
    pickle_entries_natively,
)

INDEX_MAX = 2**63 - 1  # the largest index or term pickles the longest
REGULAR_COMMAND = b"\x00"  # PySyncObj's _COMMAND_TYPE.REGULAR
FUNC_ID = 2**31 - 1
PASSWORD = "unit-test-secret"


def _entry_command(proposal: bytes) -> bytes:
    """A log entry's command as PySyncObj builds it for `apply_block(proposal)`,
    with its own protocol 2 (an older node's leader: the largest encoding)."""
    return REGULAR_COMMAND + pickle.dumps((FUNC_ID, (proposal,)), 2)


def test_the_bound_admits_the_largest_append_entries_pysyncobj_can_send():
    encryptor = getEncryptor(PASSWORD)
    rand_key = os.urandom(32)
    largest_entry = _entry_command(os.urandom(PROPOSAL_INFLATED_BYTES_MAX))  # random bytes: nothing deflates
    assert len(largest_entry) <= RAFT_ENTRY_BYTES_MAX
    # A batch closes at the entry that reaches APPEND_ENTRIES_BATCH_BYTES: up to
    # a batch of one-byte entries, then the largest entry there is.
    tiny = [(os.urandom(1), INDEX_MAX - i, INDEX_MAX) for i in range(APPEND_ENTRIES_BATCH_BYTES - 1)]
    message = {
        "type": "append_entries", "term": INDEX_MAX, "commit_index": INDEX_MAX,
        "entries": [*tiny, (largest_entry, INDEX_MAX, INDEX_MAX)], "prevLogIdx": INDEX_MAX, "prevLogTerm": INDEX_MAX,
    }

    wire = encode_message(message, rand_key, encryptor)

    assert len(wire) <= MESSAGE_BYTES_MAX
    pickled_overhead = len(pickle.dumps(tiny, 2)) - sum(len(e[0]) * 2 for e in tiny)  # bytes pickle as UTF-8: <= 2 per byte
    assert pickled_overhead <= ENTRY_PICKLE_OVERHEAD_BYTES * len(tiny)


def test_every_handshake_message_fits_the_unauthenticated_bound():
    encryptor = getEncryptor(PASSWORD)
    key = os.urandom(32)
    address = "h" * 253 + ":65535"
    for rand_key, message in ((None, os.urandom(32)), (key, address), (key, "readonly"), (key, ["status"]), (key, ["add", address])):
        assert len(encode_message(message, rand_key, encryptor)) <= HANDSHAKE_MESSAGE_BYTES_MAX


# ------------------------------------------------------------ connect timeout

# After the first SYN seen. Linux retransmits a SYN at 1, 3, 7, 15 s, or since
# 6.5 (tcp_syn_linear_timeouts = 4) at 1, 2, 3, 4, 6, 10 s: healed at 7.5 s, a
# connect left to the kernel gets through at 10 s at the earliest.
BLOCKED_S = 7.5
RECONNECT_AFTER_HEAL_S_MAX = CONNECT_TIMEOUT_S + 0.5 + 0.5  # + connectionRetryTime + ticks on a loaded machine
TICK_S = 0.05
FILLERS = 3
# Below Linux's ephemeral range (32768-60999 by default), five digits, with
# room above for the node's own address: a port the kernel picked could sit
# at the top of the range with nothing above it (a CI failure, e2d5ef3).
LISTENER_PORTS = range(20_000, 30_000)


def _blackhole() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket that drops SYNs: backlog 0, its accept queue filled
    by connections never accepted (Linux drops a SYN when the queue is full)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", _free_port(LISTENER_PORTS)))
    listener.listen(0)
    fillers = []
    for _ in range(FILLERS):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(listener.getsockname())
        except BlockingIOError:
            pass
        fillers.append(s)
    return listener, fillers


def _free_port(ports: range) -> int:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {ports}")


def _address_above(port_below: int) -> str:
    """A free loopback address that sorts after 127.0.0.1:port_below (PySyncObj:
    the greater address connects): a greater port of as many digits."""
    return f"127.0.0.1:{_free_port(range(port_below + 1, LISTENER_PORTS.stop + 1000))}"


def _syn_sent_ports(peer_port: int) -> set[int]:
    """Local ports of this host's sockets in SYN-SENT towards 127.0.0.1:peer_port
    (the kernel's view, whatever transport made them)."""
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "02" and int(remote.split(":")[1], 16) == peer_port:
                found.add(int(local.split(":")[1], 16))
    return found


def test_a_connect_whose_syns_are_dropped_is_abandoned_and_retried_fresh():
    listener, fillers = _blackhole()
    peer_port = listener.getsockname()[1]
    filler_ports = {f.getsockname()[1] for f in fillers}
    conf = SyncObjConf(autoTick=False, password=PASSWORD, connectionRetryTime=0.5, raftMinTimeout=0.4, raftMaxTimeout=0.8, appendEntriesPeriod=0.05)
    node = SyncObj(_address_above(peer_port), [f"127.0.0.1:{peer_port}"], conf, transportClass=RaftTransport)
    try:
        # While the peer drops SYNs: every attempt is a fresh socket that
        # lives no longer than the connect timeout.
        seen: dict[int, list[float]] = {}  # local port -> [first, last] seen in SYN-SENT
        started = time.monotonic()
        while time.monotonic() - started < BLOCKED_S or not seen:
            assert time.monotonic() - started < 10, "the node never tried to connect"
            node.doTick(TICK_S)
            now = time.monotonic()
            for port in _syn_sent_ports(peer_port) - filler_ports:
                seen.setdefault(port, [now, now])[1] = now
        longest_s = max(last - first for first, last in seen.values())
        assert longest_s <= CONNECT_TIMEOUT_S + 4 * TICK_S, f"a connect sat in SYN-SENT for {longest_s:.1f} s"
        assert len(seen) >= 2, "the node did not retry with a fresh connect"

        # The partition heals: the peer accepts again.
        listener.setblocking(False)
        healed = time.monotonic()
        ours = None
        while ours is None and time.monotonic() - healed < 10:
            node.doTick(TICK_S)
            try:
                sock, addr = listener.accept()
            except BlockingIOError:
                continue
            if addr[1] in filler_ports:
                sock.close()
            else:
                ours = sock
        assert ours is not None, "the node never connected after the heal"
        reconnect_s = time.monotonic() - healed
        ours.close()
        assert reconnect_s <= RECONNECT_AFTER_HEAL_S_MAX, f"reconnected {reconnect_s:.1f} s after the heal (SYN backoff?)"
    finally:
        node.destroy()
        listener.close()
        for f in fillers:
            f.close()


def test_the_blackhole_really_drops_syns():
    """The premise of the test above: a plain connect to it stays in SYN-SENT."""
    listener, fillers = _blackhole()
    probe = socket.socket()
    probe.settimeout(CONNECT_TIMEOUT_S)
    try:
        assert probe.connect_ex(listener.getsockname()) != 0  # timed out, not connected
    finally:
        probe.close()
        listener.close()
        for f in fillers:
            f.close()


# ------------------------------------------------------- the announced length

def _frame(message, rand_key, encryptor) -> bytes:
    data = encode_message(message, rand_key, encryptor)
    return struct.pack("<i", len(data)) + data


def _tick_until(node, predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        node.doTick(TICK_S)
        value = predicate()
        if value:
            return value
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def _read_frame(node, sock: socket.socket) -> bytes:
    buf = bytearray()

    def whole():
        try:
            buf.extend(sock.recv(65536))
        except BlockingIOError:
            pass
        return len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from("<i", buf)[0]

    _tick_until(node, whole, 5, "the node's handshake reply")
    return bytes(buf[4:])


def _listening_node():
    port_holder = socket.socket()
    port_holder.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{port_holder.getsockname()[1]}"
    port_holder.close()
    conf = SyncObjConf(autoTick=False, password=PASSWORD, connectionRetryTime=0.5)
    node = SyncObj(address, [], conf, transportClass=RaftTransport)
    _tick_until(node, lambda: node._SyncObj__transport.ready, 5, "the node to bind")
    host, port = address.rsplit(":", 1)
    return node, (host, int(port))


def test_before_the_handshake_a_message_may_announce_only_the_handshake_bound():
    node, address = _listening_node()
    try:
        sock = socket.create_connection(address)
        sock.setblocking(False)
        sock.send(struct.pack("<i", HANDSHAKE_MESSAGE_BYTES_MAX + 1))
        _tick_until(node, lambda: _closed_by_peer(sock), 2, "the node to close the connection")
        sock.close()
    finally:
        node.destroy()


def test_after_the_handshake_a_message_may_announce_up_to_the_message_bound_and_no_more():
    encryptor = getEncryptor(PASSWORD)
    node, address = _listening_node()
    try:
        for announced, closed in ((MESSAGE_BYTES_MAX, False), (MESSAGE_BYTES_MAX + 1, True)):
            sock = socket.create_connection(address)
            sock.setblocking(False)
            my_key = os.urandom(32)
            sock.send(_frame(my_key, None, encryptor))
            reply = _read_frame(node, sock)
            echoed, their_key = raft_pickle.loads(zlib.decompress(encryptor.decrypt(reply)))
            assert echoed == my_key
            sock.send(_frame("readonly", their_key, encryptor) + struct.pack("<i", announced) + b"x" * 1024)
            if closed:
                _tick_until(node, lambda: _closed_by_peer(sock), 2, f"the node to close a connection announcing {announced}")
            else:
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    node.doTick(TICK_S)
                    assert not _closed_by_peer(sock), f"a connection announcing {announced} was closed"
            sock.close()
    finally:
        node.destroy()


# ------------------------------------------------------------ the encoding

def _connection(encryptor) -> RaftConnection:
    conn = RaftConnection(None, Refusals(), timeout_s=1.0, send_buffer_bytes=1024, recv_buffer_bytes=1024)
    conn.encryptor = encryptor
    return conn


def _pysyncobj_encode(message, rand_key, encryptor, stamp: int) -> bytes:
    """A message as PySyncObj 0.3.17's own TcpConnection (and dex before
    protocol 5) encodes it: protocol 2, deflated at level 3."""
    return encryptor.encrypt_at_time(zlib.compress(pickle.dumps((rand_key, message), 2), 3), stamp)


def _append_entries(proposal: bytes, entry_protocol: int) -> dict:
    entry = REGULAR_COMMAND + pickle.dumps((FUNC_ID, (proposal,), {}), entry_protocol)
    return {"type": "append_entries", "term": 3, "commit_index": 9, "entries": [(entry, 10, 3)], "prevLogIdx": 9, "prevLogTerm": 3}


def test_messages_decode_across_the_old_and_new_encodings():
    encryptor = getEncryptor(PASSWORD)
    key = os.urandom(32)
    proposal = zlib.compress(os.urandom(3000))
    old = _append_entries(proposal, 2)
    new = _append_entries(proposal, PICKLE_PROTOCOL)
    conn = _connection(encryptor)
    conn.recvRandKey = key
    assert conn._decode(_pysyncobj_encode(old, key, encryptor, int(time.monotonic()))) == old
    assert conn._decode(encode_message(new, key, encryptor)) == new
    # and what we send, PySyncObj's own decoding reads
    assert raft_pickle.loads(zlib.decompress(encryptor.decrypt(encode_message(new, key, encryptor)))) == (key, new)


def test_a_block_goes_on_the_wire_at_its_own_size(monkeypatch):
    """Protocol 2 stores bytes as UTF-8 text: a deflated block grew ~1.5x in
    its log entry and again in the message, and zlib was paid to undo it."""
    monkeypatch.setattr(raft_pickle, "dumps", raft_pickle.dumps)  # restored after the test
    pickle_entries_natively()
    encryptor = getEncryptor(PASSWORD)
    proposal = zlib.compress(os.urandom(3000))
    entry = REGULAR_COMMAND + raft_pickle.dumps((FUNC_ID, (proposal,), {}))  # as PySyncObj builds it now
    assert len(entry) <= len(proposal) + 32
    message = {"type": "append_entries", "term": 3, "commit_index": 9, "entries": [(entry, 10, 3)], "prevLogIdx": 9, "prevLogTerm": 3}
    plain = zlib.decompress(encryptor.decrypt(encode_message(message, os.urandom(32), encryptor)))
    assert len(plain) <= len(proposal) + 256


def test_only_the_full_dump_is_deflated():
    encryptor = getEncryptor(PASSWORD)
    chunk = bytes(60_000)  # an engine snapshot deflates well
    dump = {"type": "append_entries", "term": 3, "commit_index": 9, "serialized": (chunk, True, False)}
    assert len(encode_message(dump, None, encryptor)) < len(chunk) // 10
    entries = _append_entries(chunk, PICKLE_PROTOCOL)
    assert len(encode_message(entries, None, encryptor)) > len(chunk)


def test_a_token_older_than_the_last_one_or_altered_is_refused():
    encryptor = getEncryptor(PASSWORD)
    key = os.urandom(32)
    conn = _connection(encryptor)
    conn.recvRandKey = key
    message = {"type": "append_entries_response", "term": 3}
    assert conn._decode(_pysyncobj_encode(message, key, encryptor, 1000)) == message
    assert conn.recvLastTimestamp == 1000
    assert conn._decode(_pysyncobj_encode(message, key, encryptor, 999)) is _UNDECODABLE
    assert conn._decode(_pysyncobj_encode(message, key, encryptor, 1000)) == message
    token = bytearray(_pysyncobj_encode(message, key, encryptor, 2000))
    token[5] = ord("A") if token[5] != ord("A") else ord("B")  # inside the timestamp
    assert conn._decode(bytes(token)) is _UNDECODABLE
    assert conn.recvLastTimestamp == 1000  # an altered stamp moves nothing
    assert conn._decode(_pysyncobj_encode(message, os.urandom(32), encryptor, 2000)) is _UNDECODABLE  # another connection's key
