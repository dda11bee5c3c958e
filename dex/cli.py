"""The `dex` command.

    dex node --config PATH --id ID       run one node in the foreground
    dex cluster init    [--config PATH] [--force]
    dex cluster up      [--config PATH] [--detach] [--timeout S]
    dex cluster status  [--config PATH] [--json]
    dex cluster kill    NODE [--config PATH]
    dex cluster restart NODE [--config PATH]
    dex cluster down    [--config PATH]
    dex cluster demo    [--config PATH]
    dex keys | deposit | order | book | trades   the client (see dex/cli_client.py)
    dex completion bash|zsh              a shell completion script
    dex audit (--node ID | --data DIR) [--config PATH] [--at HEIGHT] [--json] ...
                                         re-derive a node's chain (see docs/AUDIT.md)
    dex chaos --seed N --duration S --faults kill,pause,... [--json PATH]
                                         seeded faults under load, then the ledger checks (docs/CHAOS.md)

--config defaults to configs/local-4.toml under the current directory, or the
repository's own configs/local-4.toml when there is none.

Expected failures (bad config, no secret, a wait that timed out, a node
already running) print one message to stderr with no traceback: exit 2 for
configuration and usage, 1 for a cluster that did not do what was asked.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from importlib.metadata import PackageNotFoundError, version

from dex import cli_client
from dex.config import DEFAULT_CONFIG, REPO_CONFIG, ClusterConfig, ConfigError, default_config_path, load_config

__all__ = ["default_config_path", "main", "build_parser"]

FOLLOW_INTERVAL_S = 1.0
HASH_CHARS = 12

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


_load = load_config  # the commands' one way to read --config

EXAMPLES = """examples:
  make up                                   a local four-node cluster (or: dex cluster up --detach)
  dex cluster status                        each node's role, head and hashes
  dex keys new --out alice.key              a new account key (file mode 0600)
  dex deposit USDT 10000 --key alice.key    faucet deposit (local clusters)
  dex order place btcusdt buy 0.01 --price 50000 --key alice.key
  dex book BTCUSDT --once                   the order book, once
  source <(dex completion bash)             tab completion in this shell (zsh: dex completion zsh)
"""


def dex_version() -> str:
    try:
        return version("dex")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _err(message: str) -> None:
    print(f"dex: {message}", file=sys.stderr)


# --- dex node --------------------------------------------------------------


def cmd_node(args: argparse.Namespace) -> int:
    import dex.node  # lazily: only a node needs the Raft and HTTP stack

    result = dex.node.run(args.config, args.id, log_file=args.log_file, rebuild=args.rebuild)
    return result if isinstance(result, int) else EXIT_OK


# --- dex cluster -----------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from cluster import local

    cfg = _load(args.config)
    path = local.init(cfg, force=args.force)
    if args.json:
        print(json.dumps({"secretFile": str(path)}))
    else:
        print(f"wrote a new cluster secret to {path} (mode 0600)")
    return EXIT_OK


def _short(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text[:HASH_CHARS]


def _yes(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _print_nodes_up(cfg: ClusterConfig, st: dict) -> None:
    roles = {e.get("id"): e.get("role") for e in st.get("nodes", [])}
    for n in cfg.nodes:
        pid = st["processes"].get(n.id)
        print(f"  {n.id}  {n.api_url}  pid {pid if pid is not None else '-'}  {roles.get(n.id, '?')}")
    print(f"leader: {st.get('leader')} (term {st.get('term')})")


def _follow_line(st: dict) -> str:
    from cluster import local

    parts = []
    for e in st.get("nodes", []):
        if not e.get("alive") and not e.get("reachable"):
            parts.append(f"{e.get('id')}:down")
        else:
            parts.append(f"{e.get('id')}:{e.get('role')}@{e.get('headHeight', '-')}")
    _, why = local.hash_agreement(st)
    quorum = "yes" if st.get("hasQuorum") else "NO"
    stamp = time.strftime("%H:%M:%S")
    return f"{stamp} leader {st.get('leader')} term {st.get('term')} quorum {quorum} | {' '.join(parts)} | {why}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    from cluster import local

    cfg = _load(args.config)
    if args.json and not args.detach:
        raise ConfigError("cluster up: --json needs --detach (the foreground mode follows the cluster in text)")
    if args.detach:
        st = local.up(cfg, timeout_s=args.timeout)
        if args.json:
            print(json.dumps(st, indent=2, sort_keys=True))
            return EXIT_OK
        print(f"cluster {cfg.name} is up")
        _print_nodes_up(cfg, st)
        return EXIT_OK
    # Foreground: this command owns the cluster's lifetime, so any way out stops it.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        st = local.up(cfg, timeout_s=args.timeout)
        print(f"cluster {cfg.name} is up; following it (Ctrl-C stops the cluster)")
        _print_nodes_up(cfg, st)
        last = None
        while True:
            st = local.status(cfg)
            now = local.summary(st)
            if now != last:
                print(_follow_line(st), flush=True)
                last = now
            time.sleep(FOLLOW_INTERVAL_S)
    except KeyboardInterrupt:
        print("\nstopping the cluster", file=sys.stderr)
        return EXIT_OK
    finally:
        stopped = local.down(cfg)
        if stopped:
            print(f"stopped {', '.join(stopped)}", file=sys.stderr)


def _store_lag(store: dict | None) -> str:
    """The trade store's lag as a person reads it: blocks and seconds behind."""
    if not store or not store.get("enabled"):
        return "off"
    if not store.get("up"):
        return "DOWN"
    blocks, seconds = store.get("lagBlocks"), store.get("lagS")
    return "-" if blocks is None else f"{blocks} blk" + ("" if seconds is None else f" {seconds:g} s")


def _status_table(st: dict) -> list[str]:
    header = ("id", "pid", "proc", "role", "term", "height", "head", "state", "commit/applied", "store lag", "engine", "reachable")
    rows = [header]
    for e in st.get("nodes", []):
        rows.append(
            (
                str(e.get("id")),
                str(e.get("pid") or "-"),
                "alive" if e.get("alive") else "down",
                str(e.get("role") or "-"),
                str(e.get("term", "-") if e.get("term") is not None else "-"),
                str(e.get("headHeight") if e.get("headHeight") is not None else "-"),
                _short(e.get("headHash")),
                _short(e.get("stateHash")),
                f"{e.get('commitIndex', '-')}/{e.get('lastApplied', '-')}",
                _store_lag(e.get("store")),
                str(e.get("engine") or "-"),
                _yes(e.get("reachable")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def cmd_status(args: argparse.Namespace) -> int:
    from cluster import local

    cfg = _load(args.config)
    st = local.status(cfg)
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return EXIT_OK if st.get("node") is not None else EXIT_FAILED
    print(f"cluster {cfg.name} ({cfg.path})")
    for line in _status_table(st):
        print("  " + line)
    if st.get("node") is None:
        print(f"all nodes are down: none of {', '.join(n.id for n in cfg.nodes)} answered")
        for n_id, why in st.get("errors", {}).items():
            print(f"  {n_id}: {why}", file=sys.stderr)
        return EXIT_FAILED
    down = [e.get("id") for e in st.get("nodes", []) if not e.get("reachable")]
    _, why = local.hash_agreement(st)
    print(f"as seen by {st['node']}: leader {st.get('leader')}, term {st.get('term')}, quorum {_yes(st.get('hasQuorum'))}")
    print(why)
    if down:
        print(f"unreachable: {', '.join(down)}")
    return EXIT_OK


def cmd_kill(args: argparse.Namespace) -> int:
    from cluster import local

    cfg = _load(args.config)
    pid = local.node_pid(cfg, args.node)
    if not local.kill_node(cfg, args.node):
        _err(f"node {args.node} is not running")
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"node": args.node, "pid": pid, "signal": "SIGKILL"}))
    else:
        print(f"killed {args.node} (pid {pid}, SIGKILL)")
    return EXIT_OK


def cmd_restart(args: argparse.Namespace) -> int:
    from cluster import local

    cfg = _load(args.config)
    pid = local.restart_node(cfg, args.node)
    local.wait_node_ready(cfg, args.node, timeout_s=args.timeout)
    started_s = time.monotonic()
    height, target = _wait_caught_up(cfg, args.node, args.timeout, show_progress=not args.json)
    if args.json:
        print(json.dumps({"node": args.node, "pid": pid, "apiUrl": cfg.node(args.node).api_url, "headHeight": height}))
        return EXIT_OK
    print(f"restarted {args.node} (pid {pid}), answering at {cfg.node(args.node).api_url}; "
          f"caught up to height {height} (the others' head was {target}) in {time.monotonic() - started_s:.1f} s")
    return EXIT_OK


CATCH_UP_POLL_S = 0.2


def _wait_caught_up(cfg: ClusterConfig, node_id: str, timeout_s: float, *, show_progress: bool) -> tuple[int, int]:
    """Wait until `node_id`'s head reaches the highest head the other nodes
    had when it came back, with a progress bar on stderr; (its height, that
    target). Raises ClusterTimeout after timeout_s."""
    import httpx

    from cluster import local

    st = local.status(cfg)
    heads = {n["id"]: n.get("headHeight") or 0 for n in st["nodes"] if n.get("reachable")}
    target = max((h for n, h in heads.items() if n != node_id), default=0)
    start = heads.get(node_id, 0)
    progress = cli_client.Progress(target - start) if show_progress and target > start else None
    url = cfg.node(node_id).api_url + "/api/v1/cluster/self"

    with local.http_client() as http:
        def head() -> int | None:
            try:
                height = int(http.get(url).json()["headHeight"])
            except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
                return None
            if progress is not None:
                progress.update(min(max(height, start), target) - start, f"blocks applied by {node_id}")
            return height if height >= target else None

        height = local.wait_for(head, timeout_s, interval_s=CATCH_UP_POLL_S, what=f"{node_id} to catch up to height {target}")
    if progress is not None:
        progress.done()
    return height, target


def cmd_down(args: argparse.Namespace) -> int:
    from cluster import local

    cfg = _load(args.config)
    stopped = local.down(cfg)
    if args.json:
        print(json.dumps({"stopped": stopped}))
        return EXIT_OK
    print(f"stopped {', '.join(stopped)}" if stopped else "no node was running")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from cluster.demo import demo

    cfg = _load(args.config)
    result = demo(cfg)
    return EXIT_OK if result["lost"] == 0 and result["duplicated"] == 0 else EXIT_FAILED


# --- dex audit -------------------------------------------------------------

AUDIT_PROGRESS_WIDTH = 100


def _audit_database_url(args: argparse.Namespace, cfg: ClusterConfig) -> str | None:
    if args.no_store:
        return None
    url = args.database_url or cfg.database_url
    if url is None and args.node is not None and getattr(cfg, "store", False):
        try:  # the nodes' own default: one SQLite file per cluster, under data_dir
            from dex.store.db import SQLITE_FILE, default_url
        except ImportError:
            return None
        if (cfg.data_dir / SQLITE_FILE).exists():
            url = default_url(cfg.data_dir)
    return url


def _audit_progress(args: argparse.Namespace):
    if not (args.progress or sys.stderr.isatty()):
        return None

    def show(p) -> None:
        rate = p.orders / p.elapsed_s if p.elapsed_s > 0 else 0
        blocks = p.height / p.elapsed_s if p.elapsed_s > 0 else 0
        line = f"audit: block {p.height}/{p.total}  {blocks:,.0f} blocks/s  {rate:,.0f} orders/s  {p.signatures:,} signatures  {p.elapsed_s:.1f} s"
        print(line[:AUDIT_PROGRESS_WIDTH], file=sys.stderr, flush=True)

    return show


def cmd_audit(args: argparse.Namespace) -> int:
    from dex import audit as auditing

    cfg = _load(args.config)
    args.depth = auditing.DEPTH_LEVELS_DEFAULT if args.depth is None else args.depth
    args.accounts = auditing.ACCOUNTS_SHOWN_DEFAULT if args.accounts is None else args.accounts
    args.problems = auditing.PROBLEMS_MAX_DEFAULT if args.problems is None else args.problems
    if (args.node is None) == (args.data is None):
        raise ConfigError("dex audit: give exactly one of --node ID and --data DIR")
    path = auditing.chain_path(cfg.node_data_dir(cfg.node(args.node).id) if args.node else args.data)
    if not 1 <= args.depth <= auditing.DEPTH_LEVELS_MAX:
        raise ConfigError(f"--depth must be in 1..{auditing.DEPTH_LEVELS_MAX}")
    if not 1 <= args.accounts <= auditing.ACCOUNTS_SHOWN_MAX:
        raise ConfigError(f"--accounts must be in 1..{auditing.ACCOUNTS_SHOWN_MAX}")
    if not 1 <= args.problems <= auditing.PROBLEMS_MAX_LIMIT:
        raise ConfigError(f"--problems must be in 1..{auditing.PROBLEMS_MAX_LIMIT}")
    if args.jobs is not None and not 1 <= args.jobs <= 256:
        raise ConfigError("--jobs must be in 1..256")
    try:
        report, engine = auditing.audit(
            path,
            cfg.markets,
            height_stop=args.at,
            database_url=_audit_database_url(args, cfg),
            signatures=not args.no_signatures,
            jobs=args.jobs,
            problems_max=args.problems,
            progress=_audit_progress(args),
        )
    except auditing.AuditError as e:
        _err(str(e))
        return EXIT_USAGE
    state = None
    if args.at is not None:
        state = auditing.state_at(engine, cfg.markets, depth=args.depth, accounts_max=args.accounts,
                                  version=report.chain_version or auditing.HEADER_VERSION)
    if args.json:
        out = report.as_json()
        if state is not None:
            out["state"] = {"height": args.at, **state}
        print(json.dumps(out, indent=2))
    else:
        if state is not None:
            _print_state(args.at, state)
        _print_audit(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_state(height: int, state: dict) -> None:
    print(f"state after block {height} (state hash {state['stateHash']})")
    for symbol, book in state["books"].items():
        print(f"  {symbol}  bids {len(book['bids'])} levels, asks {len(book['asks'])} levels")
        for price, qty in reversed(book["asks"]):
            print(f"    ask {price:>16} {qty:>16}")
        for price, qty in book["bids"]:
            print(f"    bid {price:>16} {qty:>16}")
    shown = len(state["accounts"])
    print(f"  accounts: {state['accountsTotal']}" + (f" (the first {shown} by id shown)" if shown < state["accountsTotal"] else ""))
    for a in state["accounts"]:
        cells = [f"{b['asset']} {b['free']} free {b['locked']} locked" for b in a["balances"]]
        print(f"    {a['accountId']:>20}  " + "; ".join(cells))


def _print_audit(report) -> None:
    rate = f"{report.orders / report.elapsed_s:,.0f} orders/s" if report.elapsed_s > 0 else "-"
    print(
        f"audited {report.path}: blocks 1..{report.height_stop} of {report.head_height}, "
        f"{report.commands:,} commands ({report.orders:,} orders, {report.unsigned_commands:,} unsigned), "
        f"{report.trades:,} trades, {report.signatures:,} signatures checked, store: {report.store}, "
        f"{report.elapsed_s:.2f} s ({rate})"
    )
    if report.ok:
        print("result: OK")
        return
    more = f" (and {report.problems_dropped} more)" if report.problems_dropped else ""
    print(f"result: {len(report.problems) + report.problems_dropped} problems{more}")
    for problem in report.problems:
        print(f"  {problem}")


# --- parsing ---------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from cluster.local import UP_TIMEOUT_S_DEFAULT

    parser = argparse.ArgumentParser(
        prog="dex", description="An order-book exchange replicated by Raft.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dex {dex_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = commands.add_parser("node", help="run one node in the foreground")
    node.add_argument("--config", required=True, help="cluster config file (TOML)")
    node.add_argument("--id", required=True, help="this node's id in the config")
    node.add_argument("--rebuild", action="store_true", help="move this node's data directory aside and start empty, catching up from the cluster (after a damaged journal or chain)")
    node.add_argument("--log-file", help="log here, rotated at 16 MiB with 3 old files kept (default: stderr)")
    node.set_defaults(func=cmd_node)

    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        default=None,
        help=f"cluster config file (default: {DEFAULT_CONFIG} here, else {REPO_CONFIG})",
    )

    cluster = commands.add_parser("cluster", help="manage a local cluster, one process per node")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("init", parents=[config], help="write a new cluster secret (0600)")
    p.add_argument("--force", action="store_true", help="replace an existing secret")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_init)

    p = actions.add_parser("up", parents=[config], help="start every node and wait for a leader")
    p.add_argument("--detach", action="store_true", help="return once the cluster is up, leaving it running")
    p.add_argument("--timeout", type=float, default=UP_TIMEOUT_S_DEFAULT, help="seconds to wait for a leader")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_up)

    p = actions.add_parser("status", parents=[config], help="each node's role, head and hashes")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)

    p = actions.add_parser("kill", parents=[config], help="SIGKILL one node")
    p.add_argument("node", help="node id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_kill)

    p = actions.add_parser("restart", parents=[config], help="stop one node and start it again")
    p.add_argument("node", help="node id")
    p.add_argument("--timeout", type=float, default=UP_TIMEOUT_S_DEFAULT, help="seconds to wait for it to answer, and again to catch up")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_restart)

    p = actions.add_parser("down", parents=[config], help="stop every node")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_down)

    p = actions.add_parser("demo", parents=[config], help="the failover demo")
    p.set_defaults(func=cmd_demo)

    cli_client.add_commands(commands, config)  # keys, deposit, order, book, trades

    p = commands.add_parser("audit", parents=[config], help="re-derive a node's chain from genesis and compare (exit 1 on a mismatch)")
    p.add_argument("--node", default=None, help="audit this node's chain (its data directory in the config)")
    p.add_argument("--data", default=None, help="audit the chain in this data directory (or this blocks.dat)")
    p.add_argument("--at", type=int, default=None, metavar="HEIGHT", help="audit up to HEIGHT and print the books and balances after it")
    p.add_argument("--database-url", default=None, help="the trade store to compare (default: the config's database_url)")
    p.add_argument("--no-store", action="store_true", help="do not compare the trade store")
    p.add_argument("--no-signatures", action="store_true", help="skip the Ed25519 checks (the slow part)")
    p.add_argument("--jobs", type=int, default=None, help="processes verifying signatures (default: one per core)")
    p.add_argument("--depth", type=int, default=None, help="with --at: price levels per side (default 20)")
    p.add_argument("--accounts", type=int, default=None, help="with --at: accounts shown, by id (default 1000)")
    p.add_argument("--problems", type=int, default=None, help="problems listed at most (default 50)")
    p.add_argument("--progress", action="store_true", help="progress on stderr even when it is not a terminal")
    p.add_argument("--json", action="store_true", help="print the report (and the state) as JSON")
    p.set_defaults(func=cmd_audit)

    from cluster import chaos  # dex chaos: the seeded fault runner (docs/CHAOS.md)

    p = commands.add_parser("chaos", parents=[config], help="run a seeded fault schedule against a temporary (or --config) cluster under load and check its ledgers (docs/CHAOS.md)")
    chaos.add_arguments(p)
    p.set_defaults(func=chaos.main)

    from dex.store import commands as store_commands  # store migrate, store status

    store_commands.add_commands(commands, config, _load)

    p = commands.add_parser("completion", help="print a shell completion script: source <(dex completion bash)")
    p.add_argument("shell", choices=["bash", "zsh"], help="the shell")
    p.set_defaults(func=cmd_completion)
    return parser


def cmd_completion(args: argparse.Namespace) -> int:
    from dex.completion import script

    print(script(args.shell, build_parser()), end="")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from cluster.local import ClusterError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        _err(str(e))
        return EXIT_USAGE
    except (ClusterError, TimeoutError) as e:
        _err(str(e))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
