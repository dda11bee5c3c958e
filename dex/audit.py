"""`dex audit`: re-derive a node's chain from genesis and compare it with what
the node stored.

One pass over the chain file, opened read-only (the node may be running; the
auditor never writes, truncates or locks it), checking:

1. the chain: `Chain.verify()` re-reads every record (crc, decoding, heights
   consecutive from 1, each header's parent is the previous block's hash, the
   index agrees with the file). A chain whose file starts at a base record
   (reset from a Raft snapshot) cannot be audited from genesis: that is a
   problem, said as such. A torn tail (a record the node would cut at its next
   start) is a problem too.
2. the commands root: recomputed from the proposal's leaves (as
   `decode_proposal` returns them) and compared with the header's.
3. every signature: Ed25519 over the signed payload (in worker processes; see
   below), and the payload authorizes exactly the commands it covers: the
   payload starts with the auth's timestamp; its method and path name a route
   that makes commands (`POST /order`, `POST /batchOrders`, `DELETE /order`,
   `DELETE /openOrders`, `PUT /order/amend`, `POST /deposit`,
   `POST /withdraw`); every command under it is the account of the public
   key; and the commands are exactly those the API makes from that request,
   by the API's own translation (`dex.ledger.translate.request_commands`,
   the module the routes use: every field of every command).
   Each signed request is also named (dex.ledger.replay.request_id) across
   the whole chain: a request carried a second time is counted in
   `replays_refused` when the block refused it, and is a problem when it
   executed again.
4. the replay: a fresh `Engine(markets)` and replay guard apply every block through
   `dex.ledger.state.apply_proposal` (the function `Replica.apply_block` uses),
   and the resulting header (leader, term, block time, command count, the
   three roots, the state hash) and results bytes must equal the stored ones.
5. the store, when a database is configured: `dex.store.check.compare_store`.

Every problem is a string that starts with the height it concerns ("block
12: ...", with the command index where there is one). At most `problems_max`
are kept; the rest are counted.

Signature verification is the expensive part (~40-80 µs each with libsodium
on the development machine, against ~4 µs to replay an order),
so blocks with signatures are sent, as raw proposal bytes in chunks of
`SIGNATURE_CHUNK_AUTHS` signatures, to a process pool that decodes them again
and verifies; the main process replays meanwhile. A chain with fewer
signatures than one chunk is verified in-process, with `dex.auth.verify`, the
API's own check. A batch of orders shares one signature.

Nothing here prints: progress goes to a callback, the result is a `Report`.
"""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from dex.auth import account_id, verify
from dex.core.commands import PlaceOrder
from dex.core.events import OrderRejected, Trade
from dex.core.markets import MarketConfig, units_to_amount
from dex.core.reasons import Reason
from dex.engine import Engine
from dex.ledger.chain import Chain, ChainError
from dex.ledger.codec import GENESIS_PARENT, HEADER_VERSION, NO_AUTH, Auth, BlockHeader, CodecError, decode_events, decode_proposal
from dex.ledger import translate
from dex.ledger.replay import ReplayGuard, request_id
from dex.ledger.state import apply_proposal

PROBLEMS_MAX_DEFAULT = 50
PROBLEMS_MAX_LIMIT = 10_000
PROGRESS_INTERVAL_S = 0.5
SIGNATURE_CHUNK_AUTHS = 2048  # signatures per task sent to a worker
SIGNATURE_TASKS_PER_JOB_MAX = 4  # tasks in flight per worker (bounds the memory they hold)
# The replay allocates millions of short-lived, acyclic objects (commands,
# events); the cyclic GC's default first threshold (700) makes it scan the
# young generation thousands of times a second. Raised for the pass only
# (measured: ~15% less CPU over 300,000 orders), restored after.
GC_THRESHOLDS_REPLAY = (50_000, 20, 100)
DEPTH_LEVELS_DEFAULT = 20
DEPTH_LEVELS_MAX = 5000
ACCOUNTS_SHOWN_DEFAULT = 1000
ACCOUNTS_SHOWN_MAX = 1_000_000
assert SIGNATURE_CHUNK_AUTHS >= 1 and SIGNATURE_TASKS_PER_JOB_MAX >= 1
assert DEPTH_LEVELS_DEFAULT <= DEPTH_LEVELS_MAX and ACCOUNTS_SHOWN_DEFAULT <= ACCOUNTS_SHOWN_MAX

CHAIN_FILE = "blocks.dat"
_HEADER_FIELDS = ("version", "height", "leader", "term", "time_ms", "commands_count", "commands_root", "results_root", "state_hash")


class AuditError(Exception):
    """The audit cannot start: no chain file, an unreadable one, a height past the head."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    height: int  # the last block replayed
    total: int  # the block the audit goes to
    orders: int  # place commands replayed so far
    commands: int
    signatures: int  # checked so far
    elapsed_s: float


@dataclass(slots=True, kw_only=True)
class Report:
    path: str
    head_height: int
    height_stop: int  # the last block the audit covers
    blocks: int = 0
    commands: int = 0
    orders: int = 0
    trades: int = 0
    signatures: int = 0
    unsigned_commands: int = 0
    replays_refused: int = 0  # signed requests carried again and refused by the replay guard
    elapsed_s: float = 0.0
    main_cpu_s: float = 0.0  # this process's CPU time (not the signature pool's)
    pool_cpu_s: float = 0.0  # the signature pool's CPU time, its start-up included
    store: str = "not configured"
    chain_version: int | None = None  # the replayed chain's header version (docs/CLUSTER.md, "Chain versions")
    problems: list[str] = field(default_factory=list)
    problems_dropped: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "chainVersion": self.chain_version,
            "headHeight": self.head_height,
            "heightStop": self.height_stop,
            "blocks": self.blocks,
            "commands": self.commands,
            "orders": self.orders,
            "trades": self.trades,
            "signatures": self.signatures,
            "unsignedCommands": self.unsigned_commands,
            "replaysRefused": self.replays_refused,
            "elapsedS": round(self.elapsed_s, 3),
            "mainCpuS": round(self.main_cpu_s, 3),
            "poolCpuS": round(self.pool_cpu_s, 3),
            "ordersPerS": round(self.orders / self.elapsed_s) if self.elapsed_s > 0 else None,
            "store": self.store,
            "ok": self.ok,
            "problems": self.problems,
            "problemsDropped": self.problems_dropped,
        }


class _Problems:
    """A bounded list of problems: the first `limit` kept, the rest counted."""

    def __init__(self, report: Report, limit: int) -> None:
        assert 1 <= limit <= PROBLEMS_MAX_LIMIT, limit
        self.report = report
        self.limit = limit

    def add(self, message: str) -> None:
        if len(self.report.problems) < self.limit:
            self.report.problems.append(message)
        else:
            self.report.problems_dropped += 1

    def extend(self, messages: list[str]) -> None:
        for m in messages:
            self.add(m)


# ------------------------------------------------------------------ entry


def chain_path(data: str | Path) -> Path:
    """A node's data directory or its chain file -> the chain file."""
    path = Path(data)
    return path / CHAIN_FILE if path.is_dir() else path


def open_chain(path: str | Path) -> Chain:
    """The chain file, read-only. AuditError if there is none; ChainError if
    it cannot be indexed (a bad record with good ones after it: damage)."""
    try:
        return Chain(path, read_only=True)
    except (FileNotFoundError, IsADirectoryError):
        raise AuditError(f"no chain file at {path}") from None


def audit(
    path: str | Path,
    markets: MarketConfig,
    *,
    height_stop: int | None = None,
    database_url: str | None = None,
    signatures: bool = True,
    jobs: int | None = None,
    problems_max: int = PROBLEMS_MAX_DEFAULT,
    progress: Callable[[Progress], None] | None = None,
    chunk_auths: int = SIGNATURE_CHUNK_AUTHS,
) -> tuple[Report, Engine]:
    """Audit the chain file at `path` (see the module docstring). Returns the
    report and the engine as replayed to `height_stop` (default: the head).
    Raises AuditError when the audit cannot run at all. The store is compared
    only for a whole-chain audit (`height_stop` None) with a `database_url`."""
    try:
        chain = open_chain(path)
    except ChainError as e:  # a damaged file is a failed audit, not a usage error
        report = Report(path=str(path), head_height=0, height_stop=0)
        report.problems.append(f"{e}; the chain cannot be read past it")
        return report, Engine(markets)
    try:
        report, engine = audit_chain(
            chain, markets, height_stop=height_stop, signatures=signatures, jobs=jobs,
            problems_max=problems_max, progress=progress, chunk_auths=chunk_auths,
        )
        if database_url and height_stop is None:
            _audit_store(report, _Problems(report, problems_max), database_url, chain, markets, progress)
        elif database_url:
            report.store = f"not checked: an audit up to a height (--at {height_stop}) does not compare the store"
    finally:
        chain.close()
    return report, engine


def _audit_store(report: Report, problems: _Problems, database_url: str, chain: Chain, markets: MarketConfig, progress) -> None:
    """Compare the trade store with the chain (dex.store.check, imported only
    when a database is configured)."""
    try:
        from dex.store.check import compare_store
    except ImportError as e:
        report.store = f"not checked: dex.store.check is not available ({e})"
        problems.add(f"store: a database is configured but cannot be compared ({e})")
        return
    started = time.monotonic()

    def store_progress(height: int, through: int) -> None:
        if progress is not None:
            progress(Progress(height=height, total=through, orders=report.orders, commands=report.commands, signatures=report.signatures, elapsed_s=report.elapsed_s + time.monotonic() - started))

    try:
        found = compare_store(database_url, chain, progress=store_progress, markets=markets)
    except Exception as e:  # an unreachable or unmigrated database: say so, without the URL
        first_line = (str(e).splitlines() or [""])[0][:200]
        found = [f"store: cannot be compared ({type(e).__name__}: {first_line})"]
    report.elapsed_s += time.monotonic() - started
    report.store = "checked" if not found else f"{len(found)} problems"
    problems.extend(list(found))


# ------------------------------------------------------------------ the pass


def audit_chain(
    chain: Chain,
    markets: MarketConfig,
    *,
    height_stop: int | None = None,
    signatures: bool = True,
    jobs: int | None = None,
    problems_max: int = PROBLEMS_MAX_DEFAULT,
    progress: Callable[[Progress], None] | None = None,
    chunk_auths: int = SIGNATURE_CHUNK_AUTHS,
) -> tuple[Report, Engine]:
    started = time.monotonic()
    cpu_started = time.process_time()
    head = chain.height
    if height_stop is not None and not 0 <= height_stop <= head:
        raise AuditError(f"height {height_stop} is not in the chain (heights 0..{head})")
    stop = head if height_stop is None else height_stop
    report = Report(path=str(chain.path), head_height=head, height_stop=stop)
    problems = _Problems(report, problems_max)
    engine = Engine(markets)
    if chain.base_height > 0:
        problems.add(
            f"block {chain.base_height + 1}: the chain starts after block {chain.base_height} (it was reset "
            f"from a Raft snapshot), so it cannot be audited from genesis; audit another node's chain"
        )
        report.elapsed_s = time.monotonic() - started
        return report, engine
    if chain.torn_tail is not None:
        offset, why = chain.torn_tail
        problems.add(f"block {head + 1} (offset {offset}): a torn record at the end of the file ({why}); the node cuts it at its next start")
    problems.extend(chain.verify())

    checker = _SignatureChecker(markets, problems, report, jobs=jobs, chunk_auths=chunk_auths) if signatures else None
    gc_thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS_REPLAY)
    try:
        try:
            _replay(chain, engine, stop, report, problems, checker, progress, started)
        except ChainError as e:  # a record that changed under us: its message names the block
            problems.add(f"{e}; the audit stopped there")
        if checker is not None:
            checker.finish(lambda: _report_progress(progress, report, stop, started))
    finally:
        gc.set_threshold(*gc_thresholds)
        if checker is not None:
            checker.close()
    report.problems.sort(key=_problem_height)  # stable: within a block, in the order found
    report.elapsed_s = time.monotonic() - started
    report.main_cpu_s = time.process_time() - cpu_started
    _report_progress(progress, report, stop, started)
    return report, engine


def _problem_height(problem: str) -> int:
    """The block a problem names ("block 12: ...", "block 12 command 3: ..."); 0 if none."""
    if not problem.startswith("block "):
        return 0
    digits = problem[6:].split(maxsplit=1)[0].rstrip(":+")
    return int(digits) if digits.isdigit() else 0


def _report_progress(progress, report: Report, height: int, started: float) -> None:
    if progress is not None:
        progress(Progress(height=height, total=report.height_stop, orders=report.orders, commands=report.commands, signatures=report.signatures, elapsed_s=time.monotonic() - started))


def _replay(chain: Chain, engine: Engine, stop: int, report: Report, problems: _Problems, checker, progress, started: float) -> None:
    parent: BlockHeader | None = None  # as replayed: the next block's time and height follow it
    parent_hash = GENESIS_PARENT  # as stored: a broken link is verify()'s to report, once
    next_progress = started + PROGRESS_INTERVAL_S
    place = PlaceOrder
    trade = Trade
    guard = ReplayGuard()
    first_use: dict[bytes, int] = {}  # request id -> the block that first carried it
    for block in chain.blocks(1, stop + 1):
        stored = block.header
        height = stored.height
        try:
            proposal, leaves = decode_proposal(block.proposal)
        except CodecError as e:
            problems.add(f"block {height}: its proposal does not decode ({e}); blocks {height}..{stop} are not replayed")
            return
        if checker is not None:
            if proposal.auths:
                checker.add(height, block.proposal, len(proposal.auths))
        report.unsigned_commands += proposal.auth_index.count(NO_AUTH)
        replayed, encoded, results = apply_proposal(engine, guard, parent, parent_hash, proposal, leaves)
        _check_reuse(height, proposal, block.results, first_use, report, problems)
        if replayed != stored:
            _compare_headers(height, stored, replayed, problems)
        if b"".join(encoded) != block.results:
            problems.add(f"block {height}: the stored results differ from the replay's ({len(block.results)} bytes stored, {sum(map(len, encoded))} replayed)")
        report.blocks += 1
        report.chain_version = replayed.version
        report.commands += len(leaves)
        for cmd in proposal.commands:
            if cmd.__class__ is place:
                report.orders += 1
        for events in results:
            for ev in events:
                if ev.__class__ is trade:
                    report.trades += 1
        parent, parent_hash = replayed, block.hash
        if progress is not None:
            now = time.monotonic()
            if now >= next_progress:
                next_progress = now + PROGRESS_INTERVAL_S
                _report_progress(progress, report, height, started)
    if report.blocks != stop:
        problems.add(f"block {report.blocks + 1}: the chain file yielded {report.blocks} blocks of {stop}")


_REUSE_REFUSED = (Reason.REPLAYED, Reason.EXPIRED_REQUEST)


def _check_reuse(height: int, proposal, stored_results: bytes, first_use: dict[bytes, int], report: Report, problems: _Problems) -> None:
    """A signed request carried twice must have been refused the second time,
    as the block stored it (the replay's own guard always refuses it)."""
    stored = None
    for i, a in enumerate(proposal.auths):
        rid = request_id(a.public_key, a.payload)
        first = first_use.get(rid)
        if first is None:
            first_use[rid] = height
            continue
        if stored is None:
            stored = _decode_results(stored_results, len(proposal.commands))
        refused = all(
            events and events[0].__class__ is OrderRejected and events[0].reason in _REUSE_REFUSED
            for index, events in zip(proposal.auth_index, stored)
            if index == i
        )
        if refused:
            report.replays_refused += 1
        else:
            problems.add(f"block {height}: auth {i} re-uses the signed request first carried in block {first}, and it executed again")


def _decode_results(data: bytes, count: int) -> list[list]:
    """Each command's stored events; [] for those past a damaged record
    (the results comparison reports the damage)."""
    out: list[list] = []
    at = 0
    try:
        for _ in range(count):
            events, at = decode_events(data, at)
            out.append(events)
    except CodecError:
        pass
    return out + [[] for _ in range(count - len(out))]


def _compare_headers(height: int, stored: BlockHeader, replayed: BlockHeader, problems: _Problems) -> None:
    for name in _HEADER_FIELDS:
        a, b = getattr(stored, name), getattr(replayed, name)
        if a == b:
            continue
        if isinstance(a, bytes):
            a, b = a.hex(), b.hex()
        why = {
            "commands_root": "recomputed from its proposal (the commands were altered)",
            "results_root": "on replay (the block's results differ)",
            "state_hash": "on replay (the engine state after the block differs)",
            "version": "on replay (a chain keeps its first block's version)",
        }.get(name, "on replay")
        problems.add(f"block {height}: {name} {a} stored, {b} {why}")


# ------------------------------------------------------------- signatures


class _SignatureChecker:
    """Gathers blocks with signatures into chunks and checks them, in a
    process pool once there is more than one chunk's worth, else in-process."""

    def __init__(self, markets: MarketConfig, problems: _Problems, report: Report, *, jobs: int | None, chunk_auths: int) -> None:
        assert chunk_auths >= 1
        self.markets = markets
        self.problems = problems
        self.report = report
        self.jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
        self.chunk_auths = chunk_auths
        self.pending: list[tuple[int, bytes]] = []
        self.pending_auths = 0
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.inflight: deque = deque()
        self.worker_cpu_s: dict[int, float] = {}  # pid -> its CPU time so far

    def add(self, height: int, proposal: bytes, auths: int) -> None:
        self.pending.append((height, proposal))
        self.pending_auths += auths
        if self.pending_auths >= self.chunk_auths:
            self._submit()

    def _submit(self) -> None:
        chunk, self.pending, self.pending_auths = self.pending, [], 0
        if self.pool is None:
            context = multiprocessing.get_context("forkserver")
            # Imported once, in the server the workers fork from.
            context.set_forkserver_preload(["dex.audit", "dex.ledger.translate"])
            self.pool = concurrent.futures.ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_worker_init, initargs=(self.markets,))
        while len(self.inflight) >= self.jobs * SIGNATURE_TASKS_PER_JOB_MAX:
            self._merge(self.inflight.popleft().result())
        self.inflight.append(self.pool.submit(_check_chunk, chunk, self.problems.limit))

    def finish(self, tick: Callable[[], None] = lambda: None) -> None:
        """Check what is left and wait for every task; `tick()` at most every
        PROGRESS_INTERVAL_S while waiting."""
        if self.pending:
            if self.pool is None:  # under one chunk in all: not worth starting processes
                _worker_init(self.markets)
                self._merge(_check_chunk(self.pending, self.problems.limit))
                self.pending, self.pending_auths = [], 0
            else:
                self._submit()
        next_tick = time.monotonic() + PROGRESS_INTERVAL_S
        while self.inflight:
            try:
                result = self.inflight[0].result(timeout=PROGRESS_INTERVAL_S)
            except concurrent.futures.TimeoutError:
                result = None
            if result is not None:
                self.inflight.popleft()
                self._merge(result)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + PROGRESS_INTERVAL_S
                tick()

    def _merge(self, result: tuple[list[str], int, int, int, float]) -> None:
        found, dropped, checked, pid, cpu_s = result
        self.problems.extend(found)
        self.report.problems_dropped += dropped
        self.report.signatures += checked
        if pid != os.getpid():
            self.worker_cpu_s[pid] = max(cpu_s, self.worker_cpu_s.get(pid, 0.0))
            self.report.pool_cpu_s = sum(self.worker_cpu_s.values())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


_worker_markets: MarketConfig | None = None


def _worker_init(markets: MarketConfig) -> None:
    global _worker_markets
    _worker_markets = markets


def _check_chunk(chunk: list[tuple[int, bytes]], problems_max: int) -> tuple[list[str], int, int, int, float]:
    """Verify every signature in these blocks and what it authorizes. Returns
    (problems, problems counted but not kept, signatures checked, this
    process's id, its CPU time so far); at most `problems_max` (the audit's
    --problems) are kept per chunk, every signature is checked."""
    markets = _worker_markets
    assert markets is not None, "call _worker_init first"
    found: list[str] = []
    dropped = 0
    checked = 0
    for height, raw in chunk:
        proposal, _ = decode_proposal(raw)  # the main process decoded it first
        by_auth: dict[int, list[tuple[int, object]]] = {}
        for i, (index, cmd) in enumerate(zip(proposal.auth_index, proposal.commands)):
            if index != NO_AUTH:
                by_auth.setdefault(index, []).append((i, cmd))
        for k, auth in enumerate(proposal.auths):
            covered = by_auth.get(k, [])
            where = f"block {height} command {covered[0][0]}" if covered else f"block {height} signature {k}"
            checked += 1
            if not verify(auth.public_key, auth.signature, auth.payload):  # the API's own check (dex.auth)
                problem = f"{where}: the signature does not verify (account {account_id(auth.public_key)})"
            else:
                why = authorization_problem(auth, [cmd for _, cmd in covered], markets)
                problem = None if why is None else f"{where}: {why}"
            if problem is not None:
                if len(found) < problems_max:
                    found.append(problem)
                else:
                    dropped += 1
    return found, dropped, checked, os.getpid(), time.process_time()


# ---------------------------------------------------------- authorization

_METHODS = (b"POST", b"PUT", b"DELETE", b"GET")


def _split_payload(auth: Auth) -> tuple[str, str, dict, bytes] | str:
    """(METHOD, path, query params, body) of a signed payload, or why not."""
    stamp = str(auth.timestamp_ms).encode()
    raw = auth.payload
    if not raw.startswith(stamp):
        return f"the signed payload does not start with its timestamp {auth.timestamp_ms}"
    rest = raw[len(stamp):]
    method = next((m for m in _METHODS if rest.startswith(m)), None)
    if method is None:
        return "the signed payload names no HTTP method"
    rest = rest[len(method):]
    end = len(rest)
    for stop in (b"?", b"{"):
        at = rest.find(stop)
        if at >= 0:
            end = min(end, at)
    path, rest = rest[:end], rest[end:]
    query = b""
    if rest.startswith(b"?"):
        brace = rest.find(b"{") if method != b"DELETE" else -1
        query, rest = (rest[1:], b"") if brace < 0 else (rest[1:brace], rest[brace:])
    try:
        params = {k: v[-1] for k, v in parse_qs(query.decode("ascii"), keep_blank_values=True).items()}
        return method.decode(), path.decode("ascii"), params, rest
    except UnicodeDecodeError:
        return "the signed payload's path or query is not ASCII"


def authorization_problem(auth: Auth, commands: list, markets: MarketConfig) -> str | None:
    """None if `commands` are exactly what the API makes from the signed
    request in `auth` (by the API's own translation, dex.ledger.translate),
    else why not (see the module docstring for the scope)."""
    account = account_id(auth.public_key)
    for cmd in commands:
        if cmd.account != account:
            return f"a command of account {cmd.account} under the signature of account {account}"
    parts = _split_payload(auth)
    if isinstance(parts, str):
        return parts
    method, path, params, body = parts
    route = f"{method} {path}"
    try:
        # Blocks made before the edge checked client ids hold orders whose
        # ids only the engine refused: the ids are not checked again here.
        expected = translate.request_commands(route, params, body, account, auth.signature, markets, check_client_id=False)
    except translate.Refused as e:
        return f"{route}: the API would refuse this request ({e.code}: {e.msg})"
    if expected is None:
        return f"the signed request {route} makes no commands, yet covers {len(commands)}"
    if list(commands) != expected:
        return f"the commands differ from what the signed {route} asks for ({len(commands)} in the block, {len(expected)} asked)"
    return None


# ------------------------------------------------------------------ state


def state_at(engine: Engine, markets: MarketConfig, *, depth: int = DEPTH_LEVELS_DEFAULT, accounts_max: int = ACCOUNTS_SHOWN_DEFAULT,
             version: int = HEADER_VERSION) -> dict:
    """Every market's book (aggregated levels, best first, at most `depth` a
    side) and the balances of the first `accounts_max` accounts by id, as
    decimal strings in the API's shapes, and the state hash of `version` (the
    chain's: Report.chain_version)."""
    assert 1 <= depth <= DEPTH_LEVELS_MAX and 1 <= accounts_max <= ACCOUNTS_SHOWN_MAX
    books = {}
    for m in markets.markets:
        bids, asks = engine.depth(m.symbol, depth)
        books[m.symbol] = {
            "bids": [[m.ticks_to_price(p), m.lots_to_qty(q)] for p, q in bids],
            "asks": [[m.ticks_to_price(p), m.lots_to_qty(q)] for p, q in asks],
        }
    assets = {a.name: a for a in markets.assets}
    ids = sorted(engine.accounts)
    accounts = []
    for acct in ids[:accounts_max]:
        accounts.append({
            "accountId": str(acct),
            "balances": [
                {"asset": name, "free": units_to_amount(assets[name], free), "locked": units_to_amount(assets[name], locked)}
                for name, (free, locked) in engine.balances(acct).items()
            ],
        })
    return {"books": books, "accounts": accounts, "accountsTotal": len(ids), "stateHash": engine.state_hash(version)}
