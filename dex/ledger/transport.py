"""The Raft port: PySyncObj's TCP transport with every input bounded before it is read.

PySyncObj 0.3.17 (the version we pin) frames each message as a 4-byte length
and that many bytes of Fernet(zlib(pickle(message))). Its `TcpConnection`
accepts any announced length up to 2 GiB and buffers that many bytes before it
decrypts anything, re-copying the whole buffer on every 64 KiB read, on the
Raft thread: 24 MB of garbage sent to a leader's Raft port, by anyone who can
reach it, forced an election. Idle connections that never authenticate stay
open forever, and a connect whose SYN is lost sits in SYN-SENT under the
kernel's backoff (1, 3, 7, 15 s...) because PySyncObj checks its connect
timeout only when the socket reports something.

This module keeps PySyncObj's protocol, handshake and wire format (nodes with
and without it interoperate) and replaces its connection and server classes
through `SyncObj(transportClass=RaftTransport)`. What it bounds:

- Announced length. Before its handshake, a connection may announce at most
  HANDSHAKE_MESSAGE_BYTES_MAX (the handshake's messages are a random key and a
  node address, a few hundred bytes); after it, MESSAGE_BYTES_MAX, derived
  below from the largest message PySyncObj sends for dex. A connection that
  announces more (or a length <= 0) is closed at once, before anything of the
  message is buffered. The length is checked after every recv, so at most one
  recv (recvBufferSize) is read past a bad header.
- Unauthenticated connections (accepted, handshake not finished): at most
  UNAUTHENTICATED_PER_HOST_MAX per source address and UNAUTHENTICATED_TOTAL_MAX
  in all. Over a cap, the oldest connection that has not sent one valid
  message is closed to make room; a connection that has (a peer mid-handshake)
  is never evicted, and if every one has, the new connection is refused. A
  connection that has not finished its handshake within HANDSHAKE_TIMEOUT_S is
  closed. At most ACCEPTS_PER_EVENT_MAX connections are accepted per poll
  round, fewer than the per-address cap: the eviction takes the oldest silent
  connections first, so a peer's new connection normally lives through the
  next poll round, in which its first message is read.
- Outgoing connects: abandoned after CONNECT_TIMEOUT_S, checked on every tick
  (every autoTickPeriod, 50 ms) whatever the socket does, so a reconnect after
  a partition heals sends a fresh SYN instead of waiting out the backoff.
- Copying: buffers are bytearrays; a message is copied once out of the read
  buffer, consumed bytes are dropped once per recv.

Why only the handshake is trusted: a message that decrypts proves the sender
knows the cluster secret (or replays a captured first message: the second
handshake message carries the receiver's fresh random key, which a replay
cannot). Nothing is unpickled before it decrypts.

What is refused is logged at most once per REFUSALS_LOG_INTERVAL_S, as one
WARNING line with counts per kind and the last source address; never a
traceback per connection. Everything here runs on PySyncObj's thread.
"""

from __future__ import annotations

import base64
import errno
import functools
import logging
import pickle
import socket
import struct
import time
import zlib
from collections import Counter

import pysyncobj.pickle as raft_pickle
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE, set_keepalive
from pysyncobj.transport import TCPTransport

from dex.ledger.codec import PROPOSAL_INFLATED_BYTES_MAX

log = logging.getLogger("dex.ledger.transport")

# ------------------------------------------------------------------ bounds

# The largest message, derived. PySyncObj pickles with protocol 2, where
# `bytes` become a latin-1 str stored as UTF-8: up to 2 bytes per byte. dex
# pickles with protocol 5 (below), but the bound still admits an older peer's.
PICKLE_BYTES_FACTOR_MAX = 2
# A log entry is one type byte + pickle((function id, (proposal,))); the
# replicated proposal is the deflated form, never larger than the plain one,
# and a deflated one inflates to at most PROPOSAL_INFLATED_BYTES_MAX (the
# block builder keeps the plain one under block_bytes_max, < 64 KiB).
ENTRY_PICKLE_OVERHEAD_BYTES = 64  # pickle framing of one command or one (command, index, term): ~48 measured
RAFT_ENTRY_BYTES_MAX = 1 + PICKLE_BYTES_FACTOR_MAX * PROPOSAL_INFLATED_BYTES_MAX + ENTRY_PICKLE_OVERHEAD_BYTES
# PySyncObj's appendEntriesBatchSizeBytes, which dex leaves at its default;
# RaftTransport asserts the running config against it. An AppendEntries holds
# entries until their sizes reach the batch, so before its last entry it holds
# less than a batch's bytes in fewer than a batch's entries (each >= 1 byte);
# a lone entry past the batch goes in batch-sized chunks, and so does the full
# dump (logCompactionBatchSize).
APPEND_ENTRIES_BATCH_BYTES = 2**16
MESSAGE_FIELDS_BYTES = 1024  # type, term, indexes, the 32-byte random key
MESSAGE_PAYLOAD_BYTES_MAX = (
    MESSAGE_FIELDS_BYTES
    + PICKLE_BYTES_FACTOR_MAX * (APPEND_ENTRIES_BATCH_BYTES + RAFT_ENTRY_BYTES_MAX)
    + (APPEND_ENTRIES_BATCH_BYTES + 1) * ENTRY_PICKLE_OVERHEAD_BYTES
)


def wire_bytes_max(payload_bytes: int) -> int:
    """The most bytes a pickled payload of `payload_bytes` takes on the wire:
    zlib's compressBound, then a Fernet token (version, time, IV, AES blocks
    with PKCS7 padding, HMAC; base64)."""
    assert payload_bytes >= 0
    deflated = payload_bytes + (payload_bytes >> 12) + (payload_bytes >> 14) + (payload_bytes >> 25) + 13
    token = 1 + 8 + 16 + (deflated // 16 + 1) * 16 + 32
    wire = 4 * ((token + 2) // 3)
    assert wire > payload_bytes
    return wire


MESSAGE_BYTES_MAX = 12 * 2**20  # ~11.4 MB derived; with block_bytes_max at 32 KiB the largest is ~0.35 MB
HANDSHAKE_MESSAGE_BYTES_MAX = 4 * 1024  # a random key (~230 bytes on the wire) or a node address
HANDSHAKE_PAYLOAD_BYTES_MAX = 1024  # pickled (32-byte key, "host:port" of <= 261 ASCII characters)
assert wire_bytes_max(MESSAGE_PAYLOAD_BYTES_MAX) <= MESSAGE_BYTES_MAX < 24 * 10**6  # the flood seen: 24 MB
assert wire_bytes_max(HANDSHAKE_PAYLOAD_BYTES_MAX) <= HANDSHAKE_MESSAGE_BYTES_MAX < MESSAGE_BYTES_MAX
assert MESSAGE_BYTES_MAX < 2**31  # the length prefix is a signed 32-bit int

UNAUTHENTICATED_PER_HOST_MAX = 8  # a peer needs one (two while it reconnects)
UNAUTHENTICATED_TOTAL_MAX = 64
ACCEPTS_PER_EVENT_MAX = 4
LISTEN_BACKLOG = 64
assert 0 < ACCEPTS_PER_EVENT_MAX < UNAUTHENTICATED_PER_HOST_MAX < UNAUTHENTICATED_TOTAL_MAX
assert LISTEN_BACKLOG >= UNAUTHENTICATED_PER_HOST_MAX

# A SYN-ACK comes back from the peer's kernel even when its process is busy,
# so a second is ample on any network we run on; the kernel's first SYN
# retransmission is at 1 s.
CONNECT_TIMEOUT_S = 1.0
# The handshake is two round trips between two poll loops; 3 s leaves room
# for a peer stalled by a fork for its dump or a loaded machine.
HANDSHAKE_TIMEOUT_S = 3.0
assert 0 < CONNECT_TIMEOUT_S < HANDSHAKE_TIMEOUT_S
READS_PER_EVENT_MAX = 64  # recvs per poll event: other sockets get their turn
REFUSALS_LOG_INTERVAL_S = 10.0

_LENGTH = struct.Struct("i")  # PySyncObj's prefix: native int (little-endian on every host we run)
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)
# accept() errors that concern one connection or a moment's shortage: keep listening.
_ACCEPT_TRANSIENT = (errno.ECONNABORTED, errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EPROTO, errno.EPERM)


# The wire format stays PySyncObj's, Fernet(zlib(pickle(message))), and any
# node decodes any other's messages (pickle.loads reads every protocol, zlib
# inflates every level), but what goes into it is chosen for cost:
# - pickle protocol 5, not PySyncObj's 2: protocol 2 stores `bytes` as a
#   latin-1 str encoded in UTF-8, so a block (deflated: half its bytes >= 0x80)
#   grows ~1.5x, twice over (the log entry, then the message holding it), and
#   zlib then spends ~50 us a message squeezing that back out;
# - zlib level 0 (stored): blocks are deflated by the builder already and the
#   other messages are a few dozen bytes; only the full dump's chunks (an
#   engine snapshot, plain) are worth deflating.
# Measured on a 1.5 KB block: encode 80 -> 3 us, decode 50 -> 20 us, and 1.7
# KB on the wire instead of 2.4 KB (docs/BENCHMARKS.md).
PICKLE_PROTOCOL = 5
DUMP_CHUNK_ZLIB_LEVEL = 1


def _pickle_dumps(obj, protocol=None) -> bytes:
    return pickle.dumps(obj, PICKLE_PROTOCOL)


def pickle_entries_natively() -> None:
    """Make PySyncObj pickle its log entries (each replicated call) with
    PICKLE_PROTOCOL. Any node reads entries of either protocol, in its
    journal or from a peer."""
    raft_pickle.dumps = _pickle_dumps


def encode_message(message, rand_key: bytes | None, encryptor) -> bytes:
    """One message as PySyncObj puts it on the wire, without the length prefix."""
    level = DUMP_CHUNK_ZLIB_LEVEL if message.__class__ is dict and message.get("serialized") is not None else 0
    if rand_key:
        message = (rand_key, message)
    data = zlib.compress(pickle.dumps(message, PICKLE_PROTOCOL), level)
    if encryptor:
        data = encryptor.encrypt_at_time(data, int(time.monotonic()))
    return data


def token_time(token: bytes) -> int:
    """A Fernet token's timestamp (bytes 1..8 of its decoded form, in the
    first 12 base64 characters), unverified: read it only after decrypt()
    has checked the token's HMAC, which covers it."""
    head = base64.urlsafe_b64decode(token[:12])
    if len(head) != 9:
        raise ValueError("short Fernet token")
    return int.from_bytes(head[1:9], "big")


class Refusals:
    """What the transport refused, by kind: counted, logged at most once per
    REFUSALS_LOG_INTERVAL_S (the first at once, the rest summed on the next line)."""

    KINDS = ("oversized", "undecryptable", "over_host_cap", "over_total_cap", "evicted", "handshake_timeout", "accept_error")

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.total: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._last_from: dict[str, str] = {}
        self._logged_s = float("-inf")

    def note(self, kind: str, source: str | None) -> None:
        assert kind in self.KINDS, kind
        self.total[kind] += 1
        self._pending[kind] += 1
        if source is not None:
            self._last_from[kind] = source
        self.flush()

    def flush(self) -> None:
        now = self.clock()
        if not self._pending or now - self._logged_s < REFUSALS_LOG_INTERVAL_S:
            return
        parts = [f"{kind} {n}" + (f" (last from {self._last_from[kind]})" if kind in self._last_from else "") for kind, n in sorted(self._pending.items())]
        log.warning("raft transport refused, in the last %.0f s at most: %s", REFUSALS_LOG_INTERVAL_S, ", ".join(parts))
        self._pending.clear()
        self._logged_s = now


class RaftConnection:
    """One TCP connection between nodes: PySyncObj's `TcpConnection` interface
    and wire format, with the announced length bounded (see the module
    docstring) and linear-time buffering.

    `authenticated` is set by the transport when the handshake is done; until
    then a message may announce at most HANDSHAKE_MESSAGE_BYTES_MAX."""

    def __init__(self, poller, refusals: Refusals, *, sock: socket.socket | None = None, peer_host: str | None = None,
                 timeout_s: float, send_buffer_bytes: int, recv_buffer_bytes: int, keepalive=None) -> None:
        assert timeout_s > 0 and send_buffer_bytes > 0 and recv_buffer_bytes > 0
        # PySyncObj's transport reads and writes these four by name.
        self.sendRandKey = None
        self.recvRandKey = None
        self.recvLastTimestamp = 0
        self.encryptor = None
        self.authenticated = False
        self.messages_received = 0  # valid (decrypted) messages since connect or accept
        self.peer_host = peer_host
        self.opened_s = time.monotonic()
        self._refusals = refusals
        self._poller = poller
        self._timeout_s = timeout_s
        self._send_buffer_bytes = send_buffer_bytes
        self._recv_buffer_bytes = recv_buffer_bytes
        self._keepalive = keepalive
        self._read = bytearray()
        self._write = bytearray()
        self._last_read_s = self.opened_s
        self._on_message = None
        self._on_connected = None
        self._on_disconnected = None
        self._socket = sock
        self._fileno = None
        self._state = CONNECTION_STATE.DISCONNECTED
        if sock is not None:
            self._fileno = sock.fileno()
            self._state = CONNECTION_STATE.CONNECTED
            self._set_keepalive()
            poller.subscribe(self._fileno, self._on_event, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)

    # -------------------------------------------------- PySyncObj's interface

    @property
    def state(self) -> int:
        return self._state

    def setOnConnectedCallback(self, callback) -> None:  # noqa: N802 (PySyncObj's names)
        self._on_connected = callback

    def setOnMessageReceivedCallback(self, callback) -> None:  # noqa: N802
        self._on_message = callback

    def setOnDisconnectedCallback(self, callback) -> None:  # noqa: N802
        self._on_disconnected = callback

    def fileno(self):
        return self._fileno

    def getSendBufferSize(self) -> int:  # noqa: N802
        return len(self._write)

    def connect(self, host: str | None, port: int) -> bool:
        if host is None:
            return False
        self._state = CONNECTION_STATE.DISCONNECTED
        self._fileno = None
        self.authenticated = False
        self.messages_received = 0
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_bytes)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._socket = sock
        self._set_keepalive()
        self._read = bytearray()
        self._write = bytearray()
        self.opened_s = self._last_read_s = time.monotonic()
        try:
            sock.connect((host, port))
        except OSError as e:
            if e.errno not in (errno.EINPROGRESS, *_AGAIN):
                sock.close()
                self._socket = None
                return False
        self._fileno = sock.fileno()
        self._state = CONNECTION_STATE.CONNECTING
        self._poller.subscribe(self._fileno, self._on_event, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)
        return True

    def send(self, message) -> None:
        data = encode_message(message, self.sendRandKey, self.encryptor)
        self._write += _LENGTH.pack(len(data))
        self._write += data
        self._try_send()

    def disconnect(self) -> None:
        notify = self._on_disconnected is not None and self._state != CONNECTION_STATE.DISCONNECTED
        self.sendRandKey = None
        self.recvRandKey = None
        self.recvLastTimestamp = 0
        self.authenticated = False
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        self._write = bytearray()
        self._read = bytearray()
        self._state = CONNECTION_STATE.DISCONNECTED
        if notify:
            self._on_disconnected()

    # ------------------------------------------------------------ deadlines

    def peer_answered(self) -> bool:
        """A connecting socket the kernel already completed (the poll will
        say so): not to be abandoned."""
        if self._socket is None:
            return False
        try:
            self._socket.getpeername()
        except OSError:
            return False
        return True

    # ------------------------------------------------------------------ I/O

    def _set_keepalive(self) -> None:
        if self._socket is not None and self._keepalive is not None:
            set_keepalive(self._socket, *self._keepalive)

    def _timed_out(self) -> bool:
        """PySyncObj's liveness rule, kept as it is: nothing read for
        connectionTimeout when the socket next does something."""
        if time.monotonic() - self._last_read_s > self._timeout_s:
            self.disconnect()
            return True
        return False

    def _on_event(self, descr, event) -> None:
        if descr != self._fileno:
            self._poller.unsubscribe(descr)
            return
        if event & POLL_EVENT_TYPE.ERROR:
            self.disconnect()
            return
        if self._timed_out():
            return
        if event & (POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE):
            if self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.disconnect()
                return
            if self._state == CONNECTION_STATE.CONNECTING:
                if self._on_connected is not None:
                    self._on_connected()
                if self._state == CONNECTION_STATE.DISCONNECTED:
                    return
                self._state = CONNECTION_STATE.CONNECTED
                self._last_read_s = time.monotonic()
                return
        if event & POLL_EVENT_TYPE.WRITE:
            self._try_send()
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return
            mask = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
            if self._write:
                mask |= POLL_EVENT_TYPE.WRITE
            self._poller.subscribe(descr, self._on_event, mask)
        if event & POLL_EVENT_TYPE.READ:
            self._receive()

    def _try_send(self) -> None:
        if self._timed_out():
            return
        while self._write:
            try:
                sent = self._socket.send(self._write)
            except OSError as e:
                if e.errno not in _AGAIN:
                    self.disconnect()
                return
            if sent <= 0:
                return
            del self._write[:sent]  # a bytearray drops a prefix without copying the rest

    def _receive(self) -> None:
        for _ in range(READS_PER_EVENT_MAX):
            try:
                chunk = self._socket.recv(self._recv_buffer_bytes)
            except OSError as e:
                if e.errno not in _AGAIN:
                    self.disconnect()
                return
            if not chunk:
                self.disconnect()
                return
            self._last_read_s = time.monotonic()
            self._read += chunk
            if not self._deliver():
                return

    def _deliver(self) -> bool:
        """Hand over every whole message in the read buffer; False if the
        connection was closed meanwhile. The announced length is checked as
        soon as its 4 bytes are here, against the bound in force for this
        message (the handshake may end between two messages of one recv)."""
        buf = self._read
        at = 0
        while len(buf) - at >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buf, at)
            bound = MESSAGE_BYTES_MAX if self.authenticated else HANDSHAKE_MESSAGE_BYTES_MAX
            if not 0 < length <= bound:
                self._refusals.note("oversized", self.peer_host)
                self.disconnect()
                return False
            if len(buf) - at - _LENGTH.size < length:
                break
            start = at + _LENGTH.size
            data = bytes(buf[start : start + length])
            at = start + length
            message = self._decode(data)
            if message is _UNDECODABLE:
                self._refusals.note("undecryptable", self.peer_host)
                self.disconnect()
                return False
            self.messages_received += 1
            if self._on_message is not None:
                self._on_message(message)
            if self._state == CONNECTION_STATE.DISCONNECTED or buf is not self._read:
                return False
        del buf[:at]
        return True

    def _decode(self, data: bytes):
        try:
            if self.encryptor:
                plain = self.encryptor.decrypt(data)  # checks the HMAC: nothing is unpickled before this
                stamp = token_time(data)  # authenticated by that HMAC
                if stamp < self.recvLastTimestamp:
                    return _UNDECODABLE
                self.recvLastTimestamp = stamp
                data = plain
            message = pickle.loads(zlib.decompress(data))
            if self.recvRandKey:
                rand_key, message = message
                if rand_key != self.recvRandKey:
                    return _UNDECODABLE
        except Exception:  # any bad token, deflate stream or pickle: one counted refusal, no traceback
            return _UNDECODABLE
        return message


_UNDECODABLE = object()


class RaftServer:
    """The listening socket: PySyncObj's `TcpServer`, handing each accepted
    socket and its source address to `on_accept`, a bounded number per poll."""

    def __init__(self, poller, host: str, port: int, on_accept, refusals: Refusals, *, send_buffer_bytes: int, recv_buffer_bytes: int) -> None:
        self._poller = poller
        self._host = host
        self._port = int(port)
        self._on_accept = on_accept
        self._refusals = refusals
        self._send_buffer_bytes = send_buffer_bytes
        self._recv_buffer_bytes = recv_buffer_bytes
        self._socket: socket.socket | None = None
        self._fileno = None

    def bind(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_bytes)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((self._host, self._port))
            sock.listen(LISTEN_BACKLOG)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._fileno = sock.fileno()
        self._poller.subscribe(self._fileno, self._on_event, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR)

    def unbind(self) -> None:
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _on_event(self, descr, event) -> None:
        if event & POLL_EVENT_TYPE.ERROR:
            self.unbind()
            return
        for _ in range(ACCEPTS_PER_EVENT_MAX):
            try:
                sock, addr = self._socket.accept()
            except OSError as e:
                if e.errno in _AGAIN:
                    return
                if e.errno in _ACCEPT_TRANSIENT:
                    self._refusals.note("accept_error", errno.errorcode.get(e.errno, str(e.errno)))
                    return
                log.error("raft server: accept failed (%s): no longer listening", e)
                self.unbind()
                return
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_bytes)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
            except OSError:  # reset before we got to it
                sock.close()
                continue
            self._on_accept(sock, addr[0])


class RaftTransport(TCPTransport):
    """PySyncObj's TCP transport (its handshake, node table and reconnects)
    over RaftConnection and RaftServer, with the caps and deadlines of the
    module docstring. Pass as `SyncObj(..., transportClass=RaftTransport)`."""

    def __init__(self, syncObj, selfNode, otherNodes) -> None:  # noqa: N803 (PySyncObj's names)
        conf = syncObj.conf
        # The derivation of MESSAGE_BYTES_MAX assumes these.
        assert conf.appendEntriesBatchSizeBytes <= APPEND_ENTRIES_BATCH_BYTES, conf.appendEntriesBatchSizeBytes
        assert conf.logCompactionBatchSize <= APPEND_ENTRIES_BATCH_BYTES, conf.logCompactionBatchSize
        assert CONNECT_TIMEOUT_S <= conf.connectionTimeout
        self.refusals = Refusals()
        self.connects_abandoned = 0  # not a refusal, not logged: a peer that is down does this every retry
        super().__init__(syncObj, selfNode, otherNodes)

    # ------------------------------------------------- construction (ours)

    def _createServer(self) -> None:  # noqa: N802
        # PySyncObj's choice of address, with our server class.
        conf = self._syncObj.conf
        if conf.bindAddress is not None:
            host, port = conf.bindAddress.rsplit(":", 1)
        elif self._selfNode.address is not None:
            host, port = self._selfNode.address.rsplit(":", 1)
            host = "::" if ":" in host else "0.0.0.0"
        else:
            raise RuntimeError("Unable to determine bind address")
        if host not in ("0.0.0.0", "::"):
            host = globalDnsResolver().resolve(host)
        self._server = RaftServer(self._syncObj._poller, host, int(port), self._on_accept, self.refusals,
                                  send_buffer_bytes=conf.sendBufferSize, recv_buffer_bytes=conf.recvBufferSize)

    def addNode(self, node) -> None:  # noqa: N802
        # TCPTransport.addNode with our connection class.
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conf = self._syncObj.conf
            conn = RaftConnection(self._syncObj._poller, self.refusals, timeout_s=conf.connectionTimeout,
                                  send_buffer_bytes=conf.sendBufferSize, recv_buffer_bytes=conf.recvBufferSize,
                                  keepalive=conf.tcp_keepalive)
            conn.encryptor = self._syncObj.encryptor
            conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
            conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
            conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
            self._connections[node] = conn

    # ------------------------------------------------------------ the caps

    def _on_accept(self, sock: socket.socket, host: str) -> None:
        unknown = self._unknownConnections
        same_host = [c for c in unknown if c.peer_host == host]
        if len(same_host) >= UNAUTHENTICATED_PER_HOST_MAX:
            crowd, kind = same_host, "over_host_cap"
        elif len(unknown) >= UNAUTHENTICATED_TOTAL_MAX:
            crowd, kind = list(unknown), "over_total_cap"
        else:
            crowd, kind = None, None
        if crowd is not None:
            silent = [c for c in crowd if c.messages_received == 0]
            if not silent:
                self.refusals.note(kind, host)
                sock.close()
                return
            self.refusals.note("evicted", host)
            min(silent, key=lambda c: c.opened_s).disconnect()
        assert len(self._unknownConnections) < UNAUTHENTICATED_TOTAL_MAX
        conf = self._syncObj.conf
        conn = RaftConnection(self._syncObj._poller, self.refusals, sock=sock, peer_host=host, timeout_s=conf.connectionTimeout,
                              send_buffer_bytes=conf.sendBufferSize, recv_buffer_bytes=conf.recvBufferSize)
        self._onNewIncomingConnection(conn)
        assert conn in self._unknownConnections

    def _onNodeConnected(self, node) -> None:  # noqa: N802
        self._connections[node].authenticated = True
        super()._onNodeConnected(node)

    def _onReadonlyNodeConnected(self, node) -> None:  # noqa: N802
        self._connections[node].authenticated = True
        super()._onReadonlyNodeConnected(node)

    # ------------------------------------------------------- the deadlines

    def _onTick(self) -> None:  # noqa: N802
        super()._onTick()
        self.enforce_deadlines()
        self.refusals.flush()

    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for conn in list(self._connections.values()):
            age_s = now - conn.opened_s
            if conn.state == CONNECTION_STATE.CONNECTING and age_s > CONNECT_TIMEOUT_S and not conn.peer_answered():
                self.connects_abandoned += 1
                conn.disconnect()  # TCPTransport reconnects after connectionRetryTime, with a fresh SYN
            elif conn.state == CONNECTION_STATE.CONNECTED and not conn.authenticated and age_s > HANDSHAKE_TIMEOUT_S:
                self.refusals.note("handshake_timeout", conn.peer_host)
                conn.disconnect()
        for conn in list(self._unknownConnections):
            if now - conn.opened_s > HANDSHAKE_TIMEOUT_S:
                self.refusals.note("handshake_timeout", conn.peer_host)
                conn.disconnect()
