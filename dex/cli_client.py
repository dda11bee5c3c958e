"""The `dex` command's client side: keys, deposits, orders, the book, trades.

    dex keys new [--out FILE] [--show-secret]
    dex keys show [--key FILE]               account id and API key (never the private key)
    dex keys import [--out FILE]             a private key (64 hex characters) from stdin
    dex deposit ASSET AMOUNT
    dex account                              balances
    dex order place SYMBOL BUY|SELL QTY [--price P] [--type LIMIT|MARKET] [--tif GTC|IOC|FOK]
                    [--post-only] [--client-order-id ID] [--count N]
    dex order cancel SYMBOL (--order-id N | --client-order-id ID)
    dex order cancel-all [SYMBOL]
    dex order amend SYMBOL (--order-id N | --client-order-id ID) [--price P] [--quantity Q]
    dex order list [SYMBOL]
    dex fills SYMBOL [--limit N]             the account's own trades
    dex book SYMBOL [--depth 10] [--once]
    dex trades SYMBOL [--limit N] [--follow]
    dex ticker [SYMBOL]                      24 h statistics
    dex klines SYMBOL [--interval 1m] [--limit N]

Every one takes --node URL (that node only, no failover; default: the nodes
of --config in order, with failover), --json (machine output), and the signed ones
--key FILE (or $DEX_KEY_FILE). A key file is JSON, mode 0600, with the
private key as hex; it is never printed unless `keys new --show-secret`.

Errors from the exchange print its code and msg to stderr and exit 1; when
no node listens at all, one line says so with the next step to take, before
any retry. Usage and key-file problems exit 2. Progress (waiting for a
node, for the book's first snapshot, bulk placing: a bar on a terminal, a
plain line per PROGRESS_LINE_EVERY orders elsewhere) goes to stderr so stdout
stays parseable.

What a user reads is the outcome, not the wire: a MARKET order's price is
its average fill (the API says 0), an EXPIRED order says why (its
expiryReason), and `--count N` ends with how many were accepted and rejected,
with the first rejection's code and message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from dex import keyfile
from dex.auth import Keypair
from dex.config import ConfigError, load_config

KEY_FILE_ENV = "DEX_KEY_FILE"
BOOK_DEPTH_DEFAULT = 10
BOOK_DEPTH_MAX = 100
LADDER_REDRAW_INTERVAL_S = 0.1  # a live ladder redraws at most this often
TRADES_LIMIT_DEFAULT = 20
TRADES_LIMIT_MAX = 1000  # the API's bound on GET /trades
FILLS_LIMIT_DEFAULT = 20
FILLS_LIMIT_MAX = 1000  # the API's bound on GET /myTrades
KLINES_LIMIT_DEFAULT = 20
KLINES_LIMIT_MAX = 1000  # the API's bound on GET /klines
KLINE_INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")  # the API's (dex/api/market.py INTERVALS_MS)
SEED_HEX_CHARS = keyfile.PRIVATE_KEY_HEX_CHARS
SEED_INPUT_CHARS_MAX = 1024  # what `keys import` reads from stdin at most: a key and some whitespace
BULK_COUNT_MAX = 10_000
PROGRESS_BAR_WIDTH = 30  # characters between the brackets
PROGRESS_LINE_EVERY = 1_000  # orders between two plain progress lines when stderr is not a terminal
BATCH_ORDERS_MAX = 100  # the API's bound on POST /batchOrders
FIRST_SNAPSHOT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 2.0  # a TCP connect to a node, before a command: is anything listening?
NO_NODE = -1001  # the API's DISCONNECTED, as dex.client reports it
NEXT_STEP_NO_NODE = "is the cluster up? try `make up` / `dex cluster status`"
assert BULK_COUNT_MAX % BATCH_ORDERS_MAX == 0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

ANSI_HOME_CLEAR = "\x1b[H\x1b[2J"
ANSI_RED = "\x1b[31m"
ANSI_GREEN = "\x1b[32m"
ANSI_RESET = "\x1b[0m"


class UsageError(ConfigError):
    """Bad arguments or key file: exit 2."""


# --- nodes and keys ----------------------------------------------------------


def node_urls(args: argparse.Namespace) -> list[str]:
    """--node alone (pinned: no failover), else the config's nodes in order."""
    if args.node:
        return [args.node.rstrip("/")]
    return [n.api_url for n in load_config(args.config).nodes]


def live_node_urls(args: argparse.Namespace) -> list[str]:
    """node_urls, after checking that at least one of them accepts a TCP
    connection: with the cluster down, fail at once with the next step to
    take instead of retrying for seconds (a refused connection is proof that
    nothing listens; a node that accepts but is slow is left to the retries)."""
    urls = node_urls(args)
    for url in urls:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=PROBE_TIMEOUT_S):
                return urls
        except OSError:
            continue
    pinned = " (pinned with --node)" if args.node else ""
    raise _DexFailure(NO_NODE, f"no node answered at {', '.join(urls)}{pinned}; {NEXT_STEP_NO_NODE}")


def write_key_file(path: Path, keys: Keypair) -> None:
    """Create `path` (never replace one) readable by its owner only."""
    try:
        keyfile.write_key(path, keys)
    except keyfile.KeyFileError as e:
        raise UsageError(str(e)) from None


def read_key_file(path: Path) -> Keypair:
    """A key file: our JSON, or just the private key's 64 hex characters."""
    try:
        return keyfile.load_key(path)
    except keyfile.KeyFileError as e:
        raise UsageError(str(e)) from None


def _keys(args: argparse.Namespace) -> Keypair:
    path = args.key or os.environ.get(KEY_FILE_ENV)
    if not path:
        raise UsageError(f"this command is signed: pass --key FILE or set {KEY_FILE_ENV} (make one with `dex keys new`)")
    return read_key_file(Path(path))


def _client(args: argparse.Namespace, signed: bool = False):
    from dex.client import Client

    client = Client(live_node_urls(args), _keys(args) if signed else None)
    client.on_retry = _progress  # "waiting for a node": every retry shows on stderr
    return client


# --- output ------------------------------------------------------------------


def _progress(line: str) -> None:
    print(f"\r\x1b[K{line}" if sys.stderr.isatty() else line, end="" if sys.stderr.isatty() else "\n", file=sys.stderr, flush=True)


def _progress_done() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr, flush=True)


def progress_bar(done: int, total: int, width: int = PROGRESS_BAR_WIDTH) -> str:
    """`[#####.....]  50%`: done of total, in `width` characters."""
    assert 0 <= done <= total and total > 0 and width > 0
    filled = done * width // total
    return f"[{'#' * filled}{'.' * (width - filled)}] {done * 100 // total:3d}%"


class Progress:
    """Long work's progress on stderr: on a terminal one bar redrawn in place,
    otherwise (a log, a pipe) a plain line every `line_every` items and at the end."""

    def __init__(self, total: int, *, tty: bool | None = None, line_every: int = PROGRESS_LINE_EVERY) -> None:
        assert total > 0 and line_every > 0
        self.total = total
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.line_every = line_every
        self.started = time.monotonic()
        self._shown = 0

    def update(self, done: int, detail: str) -> None:
        assert self._shown <= done <= self.total
        rate = done / max(time.monotonic() - self.started, 1e-9)
        text = f"{done}/{self.total} {detail} ({rate:,.0f}/s)"
        if self.tty:
            print(f"\r\x1b[K{progress_bar(done, self.total)} {text}", end="", file=sys.stderr, flush=True)
        elif done == self.total or done // self.line_every > self._shown // self.line_every:
            print(text, file=sys.stderr, flush=True)
        self._shown = done

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    cells = [tuple(str(c) for c in header)] + [tuple("-" if c is None else str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def _print_json(doc: object) -> None:
    print(json.dumps(doc, indent=2))


def status_text(order: dict) -> str:
    """An order's status as a user reads it: EXPIRED says why (the answer's expiryReason)."""
    status = str(order.get("status", "-"))
    reason = order.get("expiryReason")
    return f"{status} ({reason})" if reason else status


# --- keys ----------------------------------------------------------------------


def cmd_keys_new(args: argparse.Namespace) -> int:
    keys = Keypair.generate()
    path = Path(args.out) if args.out else Path(f"dex-{keys.account}.key")
    write_key_file(path, keys)
    doc = _key_doc(keys, path)
    if args.show_secret:
        doc["privateKey"] = keys.private.hex()
    if args.json:
        _print_json(doc)
    else:
        _print_key_doc(doc, " (mode 0600)")
        if args.show_secret:
            print(f"private  {doc['privateKey']}")
    return EXIT_OK


def _key_doc(keys: Keypair, path: Path) -> dict:
    return {"account": str(keys.account), "apiKey": keys.api_key, "keyFile": str(path)}


def _print_key_doc(doc: dict, mode: str = "") -> None:
    print(f"account  {doc['account']}")
    print(f"api key  {doc['apiKey']}")
    print(f"key file {doc['keyFile']}{mode}")


def cmd_keys_show(args: argparse.Namespace) -> int:
    path = args.key or os.environ.get(KEY_FILE_ENV)
    if not path:
        raise UsageError(f"which key? pass --key FILE or set {KEY_FILE_ENV}")
    doc = _key_doc(read_key_file(Path(path)), Path(path))
    if args.json:
        _print_json(doc)
    else:
        _print_key_doc(doc)
    return EXIT_OK


def cmd_keys_import(args: argparse.Namespace) -> int:
    """A private key (64 hex characters, e.g. from `keys new --show-secret`)
    read from stdin, never from the command line where `ps` and the shell's
    history would keep it."""
    text = sys.stdin.read(SEED_INPUT_CHARS_MAX + 1)
    seed = text.strip()
    if len(text) > SEED_INPUT_CHARS_MAX or len(seed) != SEED_HEX_CHARS:
        raise UsageError(f"keys import: expected a private key of {SEED_HEX_CHARS} hex characters on stdin")
    try:
        keys = Keypair.from_private(bytes.fromhex(seed))
    except ValueError:
        raise UsageError(f"keys import: the private key on stdin is not {SEED_HEX_CHARS} hex characters") from None
    path = Path(args.out) if args.out else Path(f"dex-{keys.account}.key")
    write_key_file(path, keys)
    doc = _key_doc(keys, path)
    if args.json:
        _print_json(doc)
    else:
        _print_key_doc(doc, " (mode 0600)")
    return EXIT_OK


# --- deposit and account ---------------------------------------------------------


def cmd_deposit(args: argparse.Namespace) -> int:
    with _client(args, signed=True) as c:
        r = c.deposit(args.asset, args.amount)
    if args.json:
        _print_json(r)
    else:
        print(f"deposited {r['amount']} {r['asset']}; free {r['free']} (block {r['blockHeight']})")
    return EXIT_OK


def cmd_account(args: argparse.Namespace) -> int:
    with _client(args, signed=True) as c:
        doc = c.account()
    if args.json:
        _print_json(doc)
        return EXIT_OK
    print(f"account {doc['accountId']}")
    rows = [(b["asset"], b["free"], b["locked"]) for b in doc["balances"]]
    for line in table(("asset", "free", "locked"), rows):
        print(line)
    if not rows:
        print("no balances (deposit with `dex deposit ASSET AMOUNT`)")
    return EXIT_OK


# --- orders --------------------------------------------------------------------


def _order_fields(args: argparse.Namespace, client_order_id: str | None) -> dict:
    fields = {"symbol": args.symbol, "side": args.side, "type": args.type, "quantity": args.qty}
    if args.price is not None:
        fields["price"] = args.price
    if args.tif is not None:
        fields["timeInForce"] = args.tif
    elif args.type == "LIMIT":
        fields["timeInForce"] = "GTC"
    if args.post_only:
        fields["postOnly"] = True
    if client_order_id is not None:
        fields["newClientOrderId"] = client_order_id
    return fields


def cmd_order_place(args: argparse.Namespace) -> int:
    if args.type == "LIMIT" and args.price is None:
        raise UsageError("a LIMIT order needs --price")
    if not 1 <= args.count <= BULK_COUNT_MAX:
        raise UsageError(f"--count must be 1..{BULK_COUNT_MAX}")
    with _client(args, signed=True) as c:
        if args.count == 1:
            f = _order_fields(args, args.client_order_id)
            r = c.place_order(f["symbol"], f["side"], f["type"], price=f.get("price"), quantity=f["quantity"], time_in_force=f.get("timeInForce"),
                              post_only=args.post_only, client_order_id=args.client_order_id)
            results = [r]
        else:
            results = _place_bulk(c, args)
    if args.json:
        _print_json(results[0] if args.count == 1 else results)
        return EXIT_OK if all("orderId" in r for r in results) else EXIT_FAILED
    rows = [(r.get("orderId"), r.get("clientOrderId"), status_text(r), price_text(r), r.get("origQty"), r.get("executedQty"), r.get("blockHeight"))
            if "orderId" in r else ("-", "-", f"REJECTED {r.get('code')}: {r.get('msg')}", "-", "-", "-", "-") for r in results]
    for line in table(("orderId", "clientOrderId", "status", "price", "qty", "executed", "block"), rows):
        print(line)
    if args.count > 1:
        print(bulk_summary(results))
    return EXIT_OK if all("orderId" in r for r in results) else EXIT_FAILED


def price_text(order: dict) -> str:
    """An order's price as a user reads it: a MARKET order has none (the API
    says 0), so it shows its average fill price, `avg P` at the price's
    decimals (`-` when nothing filled)."""
    if order.get("type") != "MARKET" or order.get("price") is None:
        return str(order.get("price", "-"))
    executed = Decimal(order.get("executedQty") or 0)
    if executed == 0 or order.get("cummulativeQuoteQty") is None:
        return "-"
    average = Decimal(order["cummulativeQuoteQty"]) / executed
    places = Decimal(1).scaleb(Decimal(order["price"]).as_tuple().exponent)
    return f"avg {average.quantize(places)}"


def bulk_summary(results: list[dict]) -> str:
    """`N orders: A accepted, R rejected (first rejection: CODE MSG)`."""
    rejected = [r for r in results if "orderId" not in r]
    line = f"{len(results)} orders: {len(results) - len(rejected)} accepted, {len(rejected)} rejected"
    if rejected:
        line += f" (first rejection: {rejected[0].get('code')} {rejected[0].get('msg')})"
    return line


def _place_bulk(c, args: argparse.Namespace) -> list[dict]:
    """`--count N`: N copies in batches of BATCH_ORDERS_MAX, with progress on stderr."""
    results: list[dict] = []
    progress = Progress(args.count)
    rejected = 0
    base = args.client_order_id
    for start in range(0, args.count, BATCH_ORDERS_MAX):
        size = min(BATCH_ORDERS_MAX, args.count - start)
        batch = [_order_fields(args, f"{base}-{start + i}" if base else None) for i in range(size)]
        answers = c.batch_orders(batch)
        results += answers
        rejected += sum(1 for r in answers if "orderId" not in r)
        progress.update(len(results), f"orders sent: {len(results) - rejected} accepted, {rejected} rejected")
    progress.done()
    return results


def cmd_order_cancel(args: argparse.Namespace) -> int:
    with _client(args, signed=True) as c:
        r = c.cancel_order(args.symbol, order_id=args.order_id, client_order_id=args.client_order_id)
    if args.json:
        _print_json(r)
    else:
        print(f"canceled order {r.get('orderId')} ({r.get('clientOrderId')}): {status_text(r)}, executed {r.get('executedQty')} of {r.get('origQty')}")
    return EXIT_OK


def cmd_order_cancel_all(args: argparse.Namespace) -> int:
    with _client(args, signed=True) as c:
        canceled = c.cancel_open_orders(args.symbol)
    if args.json:
        _print_json(canceled)
        return EXIT_OK
    where = f" in {args.symbol}" if args.symbol else ""
    print(f"canceled {len(canceled)} open order{'' if len(canceled) == 1 else 's'}{where}")
    rows = [(o.get("orderId"), o.get("clientOrderId"), o.get("symbol"), o.get("side"), o.get("price"), o.get("origQty"), o.get("executedQty")) for o in canceled]
    if rows:
        for line in table(("orderId", "clientOrderId", "symbol", "side", "price", "qty", "executed"), rows):
            print(line)
    return EXIT_OK


def cmd_order_amend(args: argparse.Namespace) -> int:
    if args.price is None and args.quantity is None:
        raise UsageError("order amend: give --price, --quantity or both")
    with _client(args, signed=True) as c:
        r = c.amend_order(args.symbol, order_id=args.order_id, client_order_id=args.client_order_id, new_price=args.price, new_qty=args.quantity)
    if args.json:
        _print_json(r)
        return EXIT_OK
    priority = "kept its place in the queue" if r.get("priorityKept") else "lost its place in the queue"
    print(f"amended order {r.get('orderId')} ({r.get('clientOrderId')}): price {r.get('price')}, qty {r.get('origQty')}, "
          f"executed {r.get('executedQty')}, {status_text(r)}; {priority} (block {r.get('blockHeight')})")
    return EXIT_OK


def cmd_order_list(args: argparse.Namespace) -> int:
    with _client(args, signed=True) as c:
        orders = c.open_orders(args.symbol)
    if args.json:
        _print_json(orders)
        return EXIT_OK
    rows = [(o["orderId"], o["clientOrderId"], o["symbol"], o["side"], o["type"], price_text(o), o["origQty"], o["executedQty"], status_text(o)) for o in orders]
    for line in table(("orderId", "clientOrderId", "symbol", "side", "type", "price", "qty", "executed", "status"), rows):
        print(line)
    if not orders:
        print("no open orders")
    return EXIT_OK


# --- the book ------------------------------------------------------------------


def ladder(book, depth: int, *, color: bool) -> list[str]:
    """Asks above (best lowest, next to the spread), bids below."""
    asks = list(reversed(book.asks(depth)))
    bids = book.bids(depth)
    width_p = max((len(p) for p, _ in asks + bids), default=5)
    width_q = max((len(q) for _, q in asks + bids), default=3)
    red, green, reset = (ANSI_RED, ANSI_GREEN, ANSI_RESET) if color else ("", "", "")
    lines = [f"{book.symbol}  height {book.last_update_id}", f"{'price'.rjust(width_p)}  {'qty'.rjust(width_q)}"]
    lines += [f"{red}{p.rjust(width_p)}  {q.rjust(width_q)}{reset}" for p, q in asks]
    best_bid, best_ask = book.best_bid(), book.best_ask()
    spread = f"spread {best_ask - best_bid}" if best_bid is not None and best_ask is not None else "spread -"
    lines.append(f"{'-' * 4} {spread} {'-' * 4}")
    lines += [f"{green}{p.rjust(width_p)}  {q.rjust(width_q)}{reset}" for p, q in bids]
    return lines


async def _book(args: argparse.Namespace) -> int:
    from dex.client import BookKeeper

    keeper = BookKeeper(live_node_urls(args), args.symbol, on_status=_progress)
    async with keeper:
        updates = aiter(keeper)
        try:
            book = await asyncio.wait_for(anext(updates), FIRST_SNAPSHOT_TIMEOUT_S)
        except TimeoutError:
            raise _DexFailure(-1001, f"no snapshot of {args.symbol} within {FIRST_SNAPSHOT_TIMEOUT_S:.0f} s") from None
        _progress_done()
        if args.once:
            _draw(book, args, live=False)
            return EXIT_OK
        # Live: one task follows the stream, this loop redraws the latest book
        # when it changed, at most once per LADDER_REDRAW_INTERVAL_S.
        changed = asyncio.Event()
        changed.set()

        async def follow() -> None:
            async for _ in updates:
                changed.set()

        follower = asyncio.create_task(follow())
        try:
            while not follower.done():
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({follower, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if changed.is_set():
                    changed.clear()
                    _draw(book, args, live=True)
                    await asyncio.sleep(LADDER_REDRAW_INTERVAL_S)  # the frame-rate cap
            follower.result()  # the stream's error, if it ended with one
        finally:
            follower.cancel()
        return EXIT_OK


def _draw(book, args: argparse.Namespace, *, live: bool) -> None:
    if args.json:
        print(json.dumps({"symbol": args.symbol, "lastUpdateId": book.last_update_id, "bids": book.bids(args.depth), "asks": book.asks(args.depth)}), flush=True)
    else:
        lines = ladder(book, args.depth, color=sys.stdout.isatty())
        print((ANSI_HOME_CLEAR if live else "") + "\n".join(lines), flush=True)


class _DexFailure(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def cmd_book(args: argparse.Namespace) -> int:
    if not 1 <= args.depth <= BOOK_DEPTH_MAX:
        raise UsageError(f"--depth must be 1..{BOOK_DEPTH_MAX}")
    return asyncio.run(_book(args))


# --- trades --------------------------------------------------------------------


def _trade_row(t: dict) -> tuple:
    stamp = time.strftime("%H:%M:%S", time.gmtime(t["time"] / 1000)) + f".{t['time'] % 1000:03d}"
    side = "SELL" if t["isBuyerMaker"] else "BUY"  # the taker's side
    return (t["id"], stamp, side, t["price"], t["qty"], t["quoteQty"])


TRADE_HEADER = ("id", "time (UTC)", "taker", "price", "qty", "quote")


def cmd_trades(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= TRADES_LIMIT_MAX:
        raise UsageError(f"--limit must be 1..{TRADES_LIMIT_MAX}")
    with _client(args) as c:
        trades = c.trades(args.symbol, args.limit)
        quote_step = _quote_step(c.exchange_info(), args.symbol) if args.follow else None
    trades.sort(key=lambda t: t["id"])
    if args.json:
        for t in trades if args.follow else ():
            print(json.dumps(t), flush=True)
        if not args.follow:
            _print_json(trades)
    else:
        for line in table(TRADE_HEADER, [_trade_row(t) for t in trades]):
            print(line, flush=True)
    if args.follow:
        last_id = trades[-1]["id"] if trades else 0
        return asyncio.run(_follow_trades(args, last_id, quote_step))
    return EXIT_OK


def _quote_step(info: dict, symbol: str) -> Decimal:
    """The quote asset's smallest unit, to render a streamed trade's quoteQty as GET /trades does."""
    decimals = {a["asset"]: a["decimals"] for a in info["assets"]}
    market = next(m for m in info["symbols"] if m["symbol"] == symbol)
    return Decimal(1).scaleb(-decimals[market["quoteAsset"]])


async def _follow_trades(args: argparse.Namespace, last_id: int, quote_step: Decimal) -> int:
    """Print trades from `<symbol>@trade` as they come, moving nodes when one dies.

    After each SUBSCRIBE is acknowledged, GET /trades fills in what happened
    since `last_id` (while connecting, or while the last node was dying);
    trade ids printed are strictly increasing, so nothing prints twice."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    from dex.client import WS_ANSWER_TIMEOUT_S, WS_CONNECT_TIMEOUT_S, WS_RECONNECTS_MAX, AsyncClient, DexError, ws_url

    urls = live_node_urls(args)
    stream = f"{args.symbol.lower()}@trade"
    failures = 0
    current = 0

    def emit(t: dict) -> None:
        nonlocal last_id
        if t["id"] > last_id:
            last_id = t["id"]
            print(json.dumps(t) if args.json else table(TRADE_HEADER, [_trade_row(t)])[1], flush=True)

    def from_stream(data: dict) -> dict:
        quote = (Decimal(data["p"]) * Decimal(data["q"])).quantize(quote_step)
        return {"id": data["t"], "price": data["p"], "qty": data["q"], "quoteQty": str(quote), "time": data["T"], "isBuyerMaker": data["m"]}

    while failures < WS_RECONNECTS_MAX:
        url = urls[current]
        _progress(f"following {stream} on {url}")
        try:
            async with connect(ws_url(url), open_timeout=WS_CONNECT_TIMEOUT_S, proxy=None) as ws:
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [stream], "id": 1}))
                early: list[dict] = []
                async with asyncio.timeout(WS_ANSWER_TIMEOUT_S):
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg.get("id") == 1 and "stream" not in msg:
                            if msg.get("error"):
                                raise _DexFailure(msg["error"].get("code", 0), msg["error"].get("msg", ""))
                            break
                        early.append(msg)
                async with AsyncClient(url, retries=1) as c:
                    for t in sorted(await c.trades(args.symbol, TRADES_LIMIT_MAX), key=lambda t: t["id"]):
                        emit(t)
                failures = 0
                for msg in early:
                    if msg.get("stream") == stream and isinstance(msg.get("data"), dict):
                        emit(from_stream(msg["data"]))
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("stream") == stream and isinstance(msg.get("data"), dict):
                        emit(from_stream(msg["data"]))
        except _DexFailure:
            raise
        except (OSError, TimeoutError, WebSocketException, ValueError, DexError) as e:
            _progress(f"trade stream lost on {url}: {type(e).__name__}")
        failures += 1
        current = (current + 1) % len(urls)
        await asyncio.sleep(min(0.1 * 2**failures, 2.0))
    raise _DexFailure(-1001, f"no node serves {stream}")


# --- fills, ticker, klines -------------------------------------------------------


def _time_text(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def cmd_fills(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= FILLS_LIMIT_MAX:
        raise UsageError(f"--limit must be 1..{FILLS_LIMIT_MAX}")
    with _client(args, signed=True) as c:
        fills = sorted(c.my_trades(args.symbol, args.limit), key=lambda t: t["id"])
    if args.json:
        _print_json(fills)
        return EXIT_OK
    rows = [(t["id"], _time_text(t["time"]), t["orderId"], "BUY" if t["isBuyer"] else "SELL", "maker" if t["isMaker"] else "taker",
             t["price"], t["qty"], t["quoteQty"], f"{t['commission']} {t['commissionAsset']}") for t in fills]
    for line in table(("id", "time (UTC)", "orderId", "side", "role", "price", "qty", "quote", "fee"), rows):
        print(line)
    if not fills:
        print(f"no fills in {args.symbol}")
    return EXIT_OK


TICKER_HEADER = ("symbol", "last", "change", "change %", "high", "low", "volume", "quote volume", "bid", "ask", "trades")


def _ticker_row(t: dict) -> tuple:
    return (t["symbol"], t["lastPrice"], t["priceChange"], t["priceChangePercent"], t["highPrice"], t["lowPrice"],
            t["volume"], t["quoteVolume"], t["bidPrice"], t["askPrice"], t["count"])


def cmd_ticker(args: argparse.Namespace) -> int:
    with _client(args) as c:
        doc = c.ticker(args.symbol)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    tickers = [doc] if args.symbol else doc
    for line in table(TICKER_HEADER, [_ticker_row(t) for t in tickers]):
        print(line)
    return EXIT_OK


KLINE_HEADER = ("open time (UTC)", "open", "high", "low", "close", "volume", "quote volume", "trades")


def cmd_klines(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= KLINES_LIMIT_MAX:
        raise UsageError(f"--limit must be 1..{KLINES_LIMIT_MAX}")
    with _client(args) as c:
        candles = c.klines(args.symbol, args.interval, args.limit)
    if args.json:
        _print_json(candles)
        return EXIT_OK
    rows = [(_time_text(k[0]), k[1], k[2], k[3], k[4], k[5], k[7], k[8]) for k in candles]
    for line in table(KLINE_HEADER, rows):
        print(line)
    if not candles:
        print(f"no {args.interval} candles in {args.symbol}: no trades yet")
    return EXIT_OK


# --- wiring --------------------------------------------------------------------


def add_commands(commands, config: argparse.ArgumentParser) -> None:
    """Add the client commands to the `dex` parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False, parents=[config])
    common.add_argument("--node", default=None, help="talk to this node's API URL only (default: the config's nodes, in order, with failover)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    signed = argparse.ArgumentParser(add_help=False, parents=[common])
    signed.add_argument("--key", default=None, help=f"key file from `dex keys new` (default: ${KEY_FILE_ENV})")

    keys = commands.add_parser("keys", help="account keys")
    keys_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = keys_actions.add_parser("new", help="make a new account key, written to a 0600 file")
    p.add_argument("--out", default=None, help="the key file (default: ./dex-<account>.key); never replaced")
    p.add_argument("--show-secret", action="store_true", help="also print the private key")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=guarded(cmd_keys_new))
    p = keys_actions.add_parser("show", help="the account id and API key of a key file (never its private key)")
    p.add_argument("--key", default=None, help=f"the key file (default: ${KEY_FILE_ENV})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=guarded(cmd_keys_show))
    p = keys_actions.add_parser("import", help="write a 0600 key file for a private key (64 hex characters) read from stdin")
    p.add_argument("--out", default=None, help="the key file (default: ./dex-<account>.key); never replaced")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=guarded(cmd_keys_import))

    p = commands.add_parser("deposit", parents=[signed], help="faucet deposit (local clusters)")
    p.add_argument("asset", type=str.upper, help="asset, any case (USDT)")
    p.add_argument("amount", help="a plain decimal, e.g. 10000 (not 1e4)")
    p.set_defaults(func=guarded(cmd_deposit))

    p = commands.add_parser("account", parents=[signed], help="the account's balances, free and locked")
    p.set_defaults(func=guarded(cmd_account))

    order = commands.add_parser("order", help="place, cancel, amend and list orders")
    order_actions = order.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = order_actions.add_parser("place", parents=[signed], help="place an order (or --count N copies, with progress)")
    p.add_argument("symbol", type=str.upper, help="market, any case (BTCUSDT)")
    p.add_argument("side", type=str.upper, choices=["BUY", "SELL"], help="BUY or SELL, any case")
    p.add_argument("qty", help="quantity in the base asset, a plain decimal such as 0.001 (not 1e-3)")
    p.add_argument("--price", default=None, help="limit price, a plain decimal (needed for LIMIT)")
    p.add_argument("--type", type=str.upper, choices=["LIMIT", "MARKET"], default="LIMIT", help="order type (default LIMIT)")
    p.add_argument("--tif", type=str.upper, choices=["GTC", "IOC", "FOK"], default=None, help="time in force (default GTC for LIMIT)")
    p.add_argument("--post-only", action="store_true", help="rejected instead of taking liquidity")
    p.add_argument("--client-order-id", default=None, help="(with --count: the prefix of each order's id)")
    p.add_argument("--count", type=int, default=1, help=f"place N copies, in batches of {BATCH_ORDERS_MAX} (max {BULK_COUNT_MAX})")
    p.set_defaults(func=guarded(cmd_order_place))

    p = order_actions.add_parser("cancel", parents=[signed], help="cancel one order")
    p.add_argument("symbol", type=str.upper, help="market, any case")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--order-id", type=int, default=None, help="the exchange's order id")
    which.add_argument("--client-order-id", default=None, help="the id you gave the order")
    p.set_defaults(func=guarded(cmd_order_cancel))

    p = order_actions.add_parser("cancel-all", parents=[signed], help="cancel every open order, in one market or all")
    p.add_argument("symbol", nargs="?", default=None, type=str.upper, help="only this market (any case)")
    p.set_defaults(func=guarded(cmd_order_cancel_all))

    p = order_actions.add_parser("amend", parents=[signed], help="change an open order's price and/or total quantity")
    p.add_argument("symbol", type=str.upper, help="market, any case")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--order-id", type=int, default=None, help="the exchange's order id")
    which.add_argument("--client-order-id", default=None, help="the id you gave the order")
    p.add_argument("--price", default=None, help="the new limit price, a plain decimal")
    p.add_argument("--quantity", default=None, help="the new total quantity (the filled part included), a plain decimal")
    p.set_defaults(func=guarded(cmd_order_amend))

    p = order_actions.add_parser("list", parents=[signed], help="open orders")
    p.add_argument("symbol", nargs="?", default=None, type=str.upper, help="only this market (any case)")
    p.set_defaults(func=guarded(cmd_order_list))

    p = commands.add_parser("book", parents=[common], help="a live order book ladder from the depth stream")
    p.add_argument("symbol", type=str.upper, help="market, any case")
    p.add_argument("--depth", type=int, default=BOOK_DEPTH_DEFAULT, help=f"levels a side (max {BOOK_DEPTH_MAX})")
    p.add_argument("--once", action="store_true", help="print the first snapshot and exit")
    p.set_defaults(func=guarded(cmd_book))

    p = commands.add_parser("trades", parents=[common], help="recent trades; --follow streams new ones")
    p.add_argument("symbol", type=str.upper, help="market, any case")
    p.add_argument("--limit", type=int, default=TRADES_LIMIT_DEFAULT, help=f"how many, newest (max {TRADES_LIMIT_MAX})")
    p.add_argument("--follow", action="store_true", help="keep printing new trades as they happen")
    p.set_defaults(func=guarded(cmd_trades))

    p = commands.add_parser("fills", parents=[signed], help="the account's own trades in a market, oldest first")
    p.add_argument("symbol", type=str.upper, help="market, any case")
    p.add_argument("--limit", type=int, default=FILLS_LIMIT_DEFAULT, help=f"how many, newest (max {FILLS_LIMIT_MAX})")
    p.set_defaults(func=guarded(cmd_fills))

    p = commands.add_parser("ticker", parents=[common], help="24 h statistics of a market (or of every market)")
    p.add_argument("symbol", nargs="?", default=None, type=str.upper, help="market, any case (default: every market)")
    p.set_defaults(func=guarded(cmd_ticker))

    p = commands.add_parser("klines", parents=[common], help="candlesticks from recent trades, oldest first")
    p.add_argument("symbol", type=str.upper, help="market, any case")
    p.add_argument("--interval", default="1m", choices=KLINE_INTERVALS, help="candle width (default 1m)")
    p.add_argument("--limit", type=int, default=KLINES_LIMIT_DEFAULT, help=f"how many candles, newest (max {KLINES_LIMIT_MAX})")
    p.set_defaults(func=guarded(cmd_klines))


def guarded(func):
    """`func` with the exchange's errors printed as `dex: error CODE: MSG`, exit 1."""

    def run(args: argparse.Namespace) -> int:
        from dex.client import DexError

        try:
            return func(args)
        except (DexError, _DexFailure) as e:
            hint = f"; {NEXT_STEP_NO_NODE}" if e.code == NO_NODE and NEXT_STEP_NO_NODE not in e.msg else ""
            print(f"dex: error {e.code}: {e.msg}{hint}", file=sys.stderr)
            return EXIT_FAILED

    run.__name__ = func.__name__
    return run
