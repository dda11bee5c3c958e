"""The `dex` client commands end to end, as subprocesses against a real
cluster, their outputs checked against the API."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

from cluster import local
from dex.auth import Keypair
from dex.cli_client import read_key_file
from dex.client import Client
from dex.core.markets import plain_decimal_problem
from tests.cluster.harness import Cluster

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60.0
DEAD_NODE = "http://127.0.0.1:9"  # nothing listens on the discard port
NEXT_STEP = "is the cluster up? try `make up` / `dex cluster status`"


def dex(cluster: Cluster, *args: str, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    config = [] if args[0] == "keys" else ["--config", str(cluster.cfg.path)]
    command = [sys.executable, "-m", "dex.cli", *args, *config]
    p = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env={**os.environ, **(env or {})})
    if ok:
        assert p.returncode == 0, f"{' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def test_keys_new_writes_a_private_file_and_prints_no_secret(tmp_path: Path, cluster_config: Cluster) -> None:
    path = tmp_path / "alice.key"
    p = dex(cluster_config, "keys", "new", "--out", str(path))
    keys = read_key_file(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert str(keys.account) in p.stdout and keys.api_key in p.stdout
    assert keys.private.hex() not in p.stdout + p.stderr

    again = dex(cluster_config, "keys", "new", "--out", str(path), ok=False)
    assert again.returncode == 2 and "exists" in again.stderr
    assert read_key_file(path).private == keys.private, "an existing key file was replaced"

    shown = json.loads(dex(cluster_config, "keys", "new", "--out", str(tmp_path / "bob.key"), "--show-secret", "--json").stdout)
    assert Keypair.from_private(bytes.fromhex(shown["privateKey"])).account == int(shown["account"])


def test_cli_trades_end_to_end(tmp_path: Path, cluster: Cluster) -> None:
    alice_key, bob_key = tmp_path / "alice.key", tmp_path / "bob.key"
    dex(cluster, "keys", "new", "--out", str(alice_key))
    dex(cluster, "keys", "new", "--out", str(bob_key))
    alice = Client(cluster.urls, read_key_file(alice_key))
    bob = Client(cluster.urls, read_key_file(bob_key))

    # --node pins one node: a dead one fails at once with the next step, though the config's nodes are up.
    pinned = dex(cluster, "deposit", "USDT", "100000", "--key", str(alice_key), "--node", DEAD_NODE, ok=False)
    assert pinned.returncode == 1 and pinned.stdout == ""
    assert pinned.stderr.splitlines() == [f"dex: error -1001: no node answered at {DEAD_NODE} (pinned with --node); {NEXT_STEP}"]
    p = dex(cluster, "deposit", "usdt", "100000", "--key", str(alice_key), "--node", cluster.urls[2])
    assert "deposited 100000 USDT" in p.stdout
    dex(cluster, "deposit", "BTC", "10", env={"DEX_KEY_FILE": str(bob_key)})
    balances = {b["asset"]: b["free"] for b in alice.account()["balances"]}
    assert balances["USDT"].startswith("100000")

    # Any case for the symbol, as `dex book` always took it.
    placed = json.loads(dex(cluster, "order", "place", "btcusdt", "buy", "0.010", "--price", "49000", "--client-order-id", "cli-1", "--json", "--key", str(alice_key)).stdout)
    assert placed["clientOrderId"] == "cli-1" and placed["status"] == "NEW"
    assert alice.get_order("btcusdt", order_id=placed["orderId"])["clientOrderId"] == "cli-1"  # the client takes any case too

    table = dex(cluster, "order", "list", "BtcUsdt", "--key", str(alice_key)).stdout
    assert "cli-1" in table and "49000.00" in table
    listed = json.loads(dex(cluster, "order", "list", "--json", "--key", str(alice_key)).stdout)
    assert [o["orderId"] for o in listed] == [o["orderId"] for o in alice.open_orders()]

    # Bulk mode: progress on stderr, every order on the book.
    bulk = dex(cluster, "order", "place", "BTCUSDT", "SELL", "0.001", "--price", "52000", "--count", "150", "--key", str(bob_key))
    assert bulk.stdout.splitlines()[-1] == "150 orders: 150 accepted, 0 rejected"
    progress = bulk.stderr.splitlines()
    assert len(progress) == 1 and progress[0].startswith("150/150 orders sent: 150 accepted, 0 rejected ("), progress  # one line: not a terminal
    assert "\r" not in bulk.stderr and "[#" not in bulk.stderr
    assert len(bob.open_orders("BTCUSDT")) == 150
    # Every one rejected: says so, with the first rejection's code and message, exit 1.
    broke = tmp_path / "broke.key"
    dex(cluster, "keys", "new", "--out", str(broke))
    refused = dex(cluster, "order", "place", "BTCUSDT", "BUY", "0.001", "--price", "49000", "--count", "300", "--key", str(broke), ok=False)
    assert refused.returncode == 1
    summary = refused.stdout.splitlines()[-1]
    assert summary.startswith("300 orders: 0 accepted, 300 rejected (first rejection: -2010 ") and "insufficient balance" in summary.lower(), summary
    assert "0 accepted, 300 rejected" in refused.stderr

    # The book, once, from the depth stream: the API's top levels.
    book = json.loads(dex(cluster, "book", "BTCUSDT", "--once", "--depth", "5", "--json").stdout)
    depth = alice.depth("BTCUSDT", 5)
    assert book["bids"] == depth["bids"] and book["asks"] == depth["asks"]
    ladder = dex(cluster, "book", "BTCUSDT", "--once").stdout
    assert "49000.00" in ladder and "52000.00" in ladder and "\x1b[" not in ladder  # no colour into a pipe

    # A trade: bob sells into alice's bid.
    fill = json.loads(dex(cluster, "order", "place", "BTCUSDT", "SELL", "0.004", "--type", "MARKET", "--json", "--key", str(bob_key)).stdout)
    assert fill["status"] == "FILLED", fill
    # A MARKET order's price is its average fill, not the API's 0.00.
    text = dex(cluster, "order", "place", "BTCUSDT", "SELL", "0.002", "--type", "MARKET", "--key", str(bob_key)).stdout.splitlines()
    assert text[1].split()[2:4] == ["FILLED", "avg"] and text[1].split()[4] == "49000.00", text
    trades = json.loads(dex(cluster, "trades", "BTCUSDT", "--json").stdout)
    api = alice.trades("BTCUSDT", 20)
    assert [t["id"] for t in trades] == sorted(t["id"] for t in api) and trades[-1]["price"] == "49000.00"
    assert "49000.00" in dex(cluster, "trades", "BTCUSDT").stdout

    canceled = json.loads(dex(cluster, "order", "cancel", "BTCUSDT", "--client-order-id", "cli-1", "--json", "--key", str(alice_key)).stdout)
    assert canceled["status"] == "CANCELED" and Decimal(canceled["executedQty"]) == Decimal("0.006")
    assert alice.open_orders("BTCUSDT") == []

    # An EXPIRED order says why: alice's market buy would trade with her own ask.
    alice.place_order("BTCUSDT", "SELL", price="50000.00", quantity="0.001")
    expired = dex(cluster, "order", "place", "BTCUSDT", "BUY", "0.001", "--type", "MARKET", "--key", str(alice_key)).stdout.splitlines()
    assert expired[1].split()[2:4] == ["EXPIRED", "(SELF_TRADE)"], expired
    alice.cancel_open_orders()

    # Errors: the API's code and msg, exit 1.
    bad = dex(cluster, "order", "place", "BTCUSDT", "BUY", "0.010", "--price", "49000.001", "--key", str(alice_key), ok=False)
    assert bad.returncode == 1 and "-1013" in bad.stderr and "PRICE_FILTER" in bad.stderr
    # An exponent is refused as the API refuses it (-1100), naming the plain spelling, not as a LOT_SIZE failure.
    exponent = dex(cluster, "order", "place", "BTCUSDT", "BUY", "1e-3", "--price", "49000", "--key", str(alice_key), ok=False)
    assert exponent.returncode == 1 and exponent.stdout == ""
    assert exponent.stderr.splitlines() == [f"dex: error -1100: {plain_decimal_problem('quantity', '1e-3')}"], exponent.stderr
    gone = dex(cluster, "order", "cancel", "BTCUSDT", "--order-id", str(placed["orderId"]), "--key", str(alice_key), ok=False)
    assert gone.returncode == 1 and "error -20" in gone.stderr
    nope = dex(cluster, "book", "NOPE", "--once", ok=False)
    assert nope.returncode == 1 and "dex: error -1121" in nope.stderr
    unsigned = dex(cluster, "order", "list", ok=False, env={"DEX_KEY_FILE": ""})
    assert unsigned.returncode == 2 and "--key" in unsigned.stderr
    alice.close()
    bob.close()


class Follower:
    """A long-running `dex` subprocess whose output lines are collected by threads."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        command = [sys.executable, "-m", "dex.cli", *args, "--config", str(cluster.cfg.path)]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for pipe, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda p=pipe, l=lines: l.extend(iter(p.readline, "")), daemon=True).start()

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(FOLLOW_TIMEOUT_S)


FOLLOW_TIMEOUT_S = 30.0


def test_cli_followers_print_new_trades_and_redraw_the_book(cluster: Cluster) -> None:
    alice, bob = Client(cluster.urls, Keypair.generate()), Client(cluster.urls, Keypair.generate())
    alice.deposit("USDT", "100000")
    bob.deposit("BTC", "10")
    alice.place_order("BTCUSDT", "BUY", price="49000.00", quantity="0.010")
    trades = Follower(cluster, "trades", "BTCUSDT", "--follow", "--json")
    book = Follower(cluster, "book", "BTCUSDT", "--json", "--depth", "3")
    try:
        local.wait_for(lambda: book.json_lines() or book.proc.poll() is not None, FOLLOW_TIMEOUT_S, what="the live book's first frame")
        assert book.json_lines()[0]["bids"] == [["49000.00", alice.depth("BTCUSDT", 3)["bids"][0][1]]]

        for _ in range(3):  # trades while the follower runs: each is printed once, in order
            assert bob.place_order("BTCUSDT", "SELL", "MARKET", quantity="0.002")["status"] == "FILLED"
        api = sorted(alice.trades("BTCUSDT", 10), key=lambda t: t["id"])
        assert len(api) == 3
        local.wait_for(lambda: len(trades.json_lines()) >= 3 or trades.proc.poll() is not None, FOLLOW_TIMEOUT_S, what="three followed trades")
        assert trades.json_lines() == api, "the follower's trades differ from GET /trades"

        depth = alice.depth("BTCUSDT", 3)
        local.wait_for(lambda: any(f["bids"] == depth["bids"] and f["lastUpdateId"] == depth["lastUpdateId"] for f in book.json_lines()), FOLLOW_TIMEOUT_S, what="the ladder redrawn at the new height")
    finally:
        trades.stop()
        book.stop()
        alice.close()
        bob.close()
    assert not [line for line in trades.err + book.err if "Traceback" in line]


def test_with_the_cluster_down_each_command_says_so_in_one_line_with_the_next_step(tmp_path: Path, cluster_config: Cluster) -> None:
    key = tmp_path / "k.key"
    dex(cluster_config, "keys", "new", "--out", str(key))
    urls = ", ".join(cluster_config.urls)
    for args in (("order", "list", "--key", str(key)), ("book", "btcusdt", "--once"), ("trades", "BTCUSDT", "--follow")):
        p = dex(cluster_config, *args, ok=False)
        assert p.returncode == 1 and p.stdout == "", args
        # One line, before any retry: not seven "retry n/7" lines and a bare ConnectError.
        assert p.stderr.splitlines() == [f"dex: error -1001: no node answered at {urls}; {NEXT_STEP}"], (args, p.stderr)


def test_version_and_help(cluster_config: Cluster) -> None:
    from importlib.metadata import version

    p = subprocess.run([sys.executable, "-m", "dex.cli", "--version"], cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert p.returncode == 0 and p.stdout.strip() == f"dex {version('dex')}"
    helped = subprocess.run([sys.executable, "-m", "dex.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert "--version" in helped.stdout and "examples:" in helped.stdout and "dex order place btcusdt" in helped.stdout


SERVER_MODULES = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "pysyncobj", "dex.engine", "dex.audit", "dex.node")


def test_the_parser_and_a_client_command_load_no_server_code() -> None:
    """Every `dex` command builds the whole parser first: building it,
    parsing a client command and importing the client it runs with must not
    import the node's, the store's or the audit's libraries, or each command
    pays a second of imports before it does anything."""
    probe = (
        "import sys\n"
        "from dex.cli import build_parser\n"
        "args = build_parser().parse_args(['order', 'list', '--json'])\n"
        "from dex import client\n"
        f"print(','.join(m for m in {SERVER_MODULES!r} if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", f"loaded by the parser or the client: {p.stdout.strip()}"


def test_store_status_is_text_by_default_and_json_on_request(cluster_config: Cluster) -> None:
    before = dex(cluster_config, "store", "status").stdout
    assert "no schema yet (run `dex store migrate`" in before and not before.startswith("{")
    dex(cluster_config, "store", "migrate")
    text = dex(cluster_config, "store", "status").stdout.splitlines()
    doc = json.loads(dex(cluster_config, "store", "status", "--json").stdout)
    assert (doc["cursorHeight"], doc["blocks"], doc["trades"]) == (0, 0, 0)
    assert text == [f"store {doc['database']}: schema at revision {doc['revision']}", "  written up to block 0: 0 blocks, 0 trades"]


def test_the_cli_modules_import_each_other_in_one_direction_only() -> None:
    source = (REPO / "dex" / "cli_client.py").read_text()
    assert "dex.cli " not in source and "from dex.cli import" not in source and "import dex.cli\n" not in source


def test_cli_trader_commands_read_what_the_api_answers(tmp_path: Path, cluster: Cluster) -> None:
    """account, amend, cancel-all, fills, ticker, klines, keys show/import: each
    command's text and --json against the API's own answer."""
    alice_key = tmp_path / "alice.key"
    alice_keys = Keypair.generate()
    # keys import: the private key from stdin, a 0600 file, no secret printed.
    imported = subprocess.run([sys.executable, "-m", "dex.cli", "keys", "import", "--out", str(alice_key)], cwd=REPO, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S, input=alice_keys.private.hex() + "\n")
    assert imported.returncode == 0, imported.stderr
    assert (alice_key.stat().st_mode & 0o777) == 0o600 and read_key_file(alice_key).private == alice_keys.private
    assert str(alice_keys.account) in imported.stdout and alice_keys.private.hex() not in imported.stdout + imported.stderr
    refused = subprocess.run([sys.executable, "-m", "dex.cli", "keys", "import", "--out", str(tmp_path / "x.key")], cwd=REPO, capture_output=True, text=True,
                             timeout=CLI_TIMEOUT_S, input="not a key\n")
    assert refused.returncode == 2 and "64 hex characters" in refused.stderr and not (tmp_path / "x.key").exists()
    shown = dex(cluster, "keys", "show", "--key", str(alice_key))
    assert shown.stdout.splitlines()[:2] == [f"account  {alice_keys.account}", f"api key  {alice_keys.api_key}"]
    assert json.loads(dex(cluster, "keys", "show", "--json", env={"DEX_KEY_FILE": str(alice_key)}).stdout) == {
        "account": str(alice_keys.account), "apiKey": alice_keys.api_key, "keyFile": str(alice_key)}
    assert alice_keys.private.hex() not in shown.stdout + shown.stderr

    key = ("--key", str(alice_key))
    alice, bob = Client(cluster.urls, alice_keys), Client(cluster.urls, Keypair.generate())
    dex(cluster, "deposit", "USDT", "100000", *key)
    bob.deposit("BTC", "10")

    # account: a row per asset, free and locked as the API says.
    a = alice.account()
    text = dex(cluster, "account", *key).stdout.splitlines()
    assert text[0] == f"account {alice_keys.account}"
    assert [line.split() for line in text[2:]] == [[b["asset"], b["free"], b["locked"]] for b in a["balances"]]
    assert json.loads(dex(cluster, "account", "--json", *key).stdout) == a

    # amend: a new price and quantity, as GET /order then reads it.
    placed = alice.place_order("BTCUSDT", "BUY", price="48000.00", quantity="0.010", client_order_id="amend-me")
    amended = dex(cluster, "order", "amend", "btcusdt", "--client-order-id", "amend-me", "--price", "48500", "--quantity", "0.020", *key).stdout
    now = alice.get_order("BTCUSDT", order_id=placed["orderId"])
    assert (now["price"], Decimal(now["origQty"])) == ("48500.00", Decimal("0.020"))
    assert f"amended order {placed['orderId']} (amend-me): price 48500.00, qty {now['origQty']}" in amended and "NEW" in amended
    neither = dex(cluster, "order", "amend", "BTCUSDT", "--order-id", str(placed["orderId"]), *key, ok=False)
    assert neither.returncode == 2 and "--price" in neither.stderr

    # fills: bob sells into alice's bid; her fill as maker, his as taker.
    assert bob.place_order("BTCUSDT", "SELL", "MARKET", quantity="0.005")["status"] == "FILLED"
    mine = alice.my_trades("BTCUSDT")
    fills = dex(cluster, "fills", "BTCUSDT", *key).stdout.splitlines()
    assert len(fills) == 2 and fills[1].split()[0] == str(mine[0]["id"])
    assert ["BUY", "maker", "48500.00", mine[0]["qty"]] == fills[1].split()[4:8]
    assert json.loads(dex(cluster, "fills", "btcusdt", "--json", *key).stdout) == mine

    # ticker and klines: the API's numbers in the table.
    ticker = alice.ticker("BTCUSDT")
    rows = dex(cluster, "ticker", "BTCUSDT").stdout.splitlines()
    assert rows[1].split()[:2] == ["BTCUSDT", "48500.00"] and ticker["lastPrice"] == "48500.00"
    assert json.loads(dex(cluster, "ticker", "btcusdt", "--json").stdout) == alice.ticker("BTCUSDT")
    assert {r.split()[0] for r in dex(cluster, "ticker").stdout.splitlines()[1:]} == {t["symbol"] for t in alice.ticker()}
    candles = alice.klines("BTCUSDT", "1m", 5)
    assert len(candles) == 1
    krows = dex(cluster, "klines", "BTCUSDT", "--interval", "1m", "--limit", "5").stdout.splitlines()
    assert len(krows) == 2 and krows[1].split()[2:7] == [candles[0][1], candles[0][2], candles[0][3], candles[0][4], candles[0][5]]
    assert json.loads(dex(cluster, "klines", "BTCUSDT", "--json").stdout) == alice.klines("BTCUSDT", "1m", 20)

    # cancel-all: every open order of the account, in that market.
    alice.place_order("BTCUSDT", "BUY", price="47000.00", quantity="0.010")
    open_ids = sorted(o["orderId"] for o in alice.open_orders("BTCUSDT"))
    assert len(open_ids) == 2
    out = dex(cluster, "order", "cancel-all", "btcusdt", *key).stdout.splitlines()
    assert out[0] == "canceled 2 open orders in BTCUSDT"
    assert sorted(int(line.split()[0]) for line in out[2:]) == open_ids
    assert alice.open_orders() == []

    # Bulk placing on a terminal: one bar redrawn in place on stderr, the table and counts on stdout.
    import pty

    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "dex.cli", "order", "place", "BTCUSDT", "BUY", "0.001", "--price", "40000", "--count", "200", *key, "--config", str(cluster.cfg.path)]
    bulk = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=CLI_TIMEOUT_S)
    os.close(terminal)
    shown = b""
    try:
        while chunk := os.read(controller, 65536):
            shown += chunk
    except OSError:  # EIO: the terminal's other end is closed and drained
        pass
    os.close(controller)
    bar = shown.decode()
    assert bulk.returncode == 0 and bulk.stdout.splitlines()[-1] == "200 orders: 200 accepted, 0 rejected"
    assert bar.count("\r\x1b[K") == 2 and "[" + "#" * 30 + "] 100% 200/200 orders sent: 200 accepted, 0 rejected" in bar, repr(bar)
    assert len(json.loads(dex(cluster, "order", "cancel-all", "--json", *key).stdout)) == 200
    alice.close()
    bob.close()


def test_every_command_takes_json() -> None:
    from dex.cli import build_parser

    def leaves(parser, path):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
            return
        for name, child in subs[0].choices.items():
            yield from leaves(child, (*path, name))

    # Long-running, narrated in the foreground: a node and the demo; a shell script.
    exempt = {("node",), ("cluster", "demo"), ("completion",)}
    missing = [" ".join(path) for path, p in leaves(build_parser(), ()) if path not in exempt and "--json" not in p._option_string_actions]
    assert missing == []


def test_every_option_and_argument_has_help_text() -> None:
    from dex.cli import build_parser

    def undocumented(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from undocumented(child, (*path, name))
            elif not action.help and not isinstance(action, argparse._HelpAction):
                yield f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"

    assert list(undocumented(build_parser(), ("dex",))) == []


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere(capsys) -> None:
    from dex.cli_client import Progress, progress_bar

    assert progress_bar(0, 300, 10) == "[..........]   0%"
    assert progress_bar(150, 300, 10) == "[#####.....]  50%"
    assert progress_bar(300, 300, 10) == "[##########] 100%"
    plain = Progress(2500, tty=False, line_every=1000)
    for done in range(100, 2501, 100):
        plain.update(done, "orders")
    plain.done()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[0] for line in lines] == ["1000/2500", "2000/2500", "2500/2500"]
    bar = Progress(200, tty=True)
    bar.update(100, "orders")
    bar.update(200, "orders")
    bar.done()
    err = capsys.readouterr().err
    assert err.count("\r\x1b[K") == 2 and "100/200 orders" in err and f"{progress_bar(200, 200)} 200/200 orders" in err and err.endswith("\n")


def test_audit_help_states_the_audits_own_defaults() -> None:
    """The parser states the audit's defaults by hand (it must not import the
    audit to read them): they must be the audit's."""
    from dex import audit
    from dex.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in commands.choices["audit"]._actions}
    assert f"(default {audit.DEPTH_LEVELS_DEFAULT})" in helps["depth"]
    assert f"(default {audit.ACCOUNTS_SHOWN_DEFAULT})" in helps["accounts"]
    assert f"(default {audit.PROBLEMS_MAX_DEFAULT})" in helps["problems"]
