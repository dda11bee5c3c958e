"""dex.audit on chains built in-process: a sound chain passes; each kind of
tampering is found and named by its block height (and command index)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dex.audit import AuditError, audit, authorization_problem, state_at
from dex.auth import Keypair
from dex.core.commands import Deposit
from dex.engine import Engine
from dex.ledger.chain import Chain
from dex.ledger.codec import decode_proposal
from dex.ledger.replay import ReplayGuard
from tests.audit import tamper
from tests.audit.chainkit import REPO, Builder, Request, markets

ALICE = Keypair.from_private(bytes(range(32)))
BOB = Keypair.from_private(bytes(range(1, 33)))


@pytest.fixture
def built(tmp_path: Path):
    """Seven blocks: deposits (one unsigned), crossing orders, a batch, a
    cancel, an amend, a cancel-all. Returns (path, builder)."""
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000000"), b.deposit(BOB, "BTC", "10"), Request(None, [Deposit(account=BOB.account, asset="USDT", amount=10**12)]))
    b.block(b.order(ALICE, "BTCUSDT", "BUY", "50000.00", "0.01000"), b.order(ALICE, "BTCUSDT", "BUY", "49990.00", "0.02000"))
    b.block(b.order(BOB, "BTCUSDT", "SELL", "49990.00", "0.01500"))  # two trades
    b.block(b.batch(BOB, [{"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "price": f"{51000 + i}.00", "quantity": "0.001"} for i in range(5)]))
    b.block(b.cancel(BOB, "BTCUSDT", 4))
    b.block(b.amend(BOB, "BTCUSDT", 5, "51500.00"))
    b.block(b.cancel_all(ALICE, "BTCUSDT"), b.order(ALICE, "BTCUSDT", "BUY", "50500.00", "0.00100", newClientOrderId="alice-last"))
    b.close()
    return tmp_path / "blocks.dat", b


def test_a_sound_chain_passes_with_every_count(built) -> None:
    path, b = built

    report, engine = audit(path, markets())

    assert report.problems == [], report.problems
    assert report.ok
    assert (report.blocks, report.head_height, report.height_stop) == (7, 7, 7)
    assert report.orders == 2 + 1 + 5 + 1
    assert report.commands == 3 + 2 + 1 + 5 + 1 + 1 + 2
    assert report.signatures == 2 + 2 + 1 + 1 + 1 + 1 + 2
    assert report.unsigned_commands == 1
    assert report.trades == 2
    assert engine.state_hash() == b.engine.state_hash()


def test_a_proposal_byte_altered_with_a_valid_crc_is_named_by_height(built) -> None:
    path, _ = built
    # Bob's sell quantity in block 3: 0.01500 BTC is 1500 lots; make it 1501.
    tamper.replace_in_proposal(path, 3, (1500).to_bytes(8, "little"), (1501).to_bytes(8, "little"))

    report, _ = audit(path, markets())

    assert not report.ok
    assert any(p.startswith("block 3: commands_root") for p in report.problems), report.problems
    assert any(p.startswith("block 3 command 0:") and "differ" in p for p in report.problems), report.problems
    assert all(p.startswith(("block 3", "block 4", "block 5", "block 6", "block 7")) for p in report.problems), report.problems


def test_an_undecodable_proposal_stops_the_replay_there(built) -> None:
    path, _ = built
    tamper.flip_proposal_byte(path, 2, 0)  # the proposal's version byte

    report, _ = audit(path, markets())

    assert report.problems[0].startswith("block 2: its proposal does not decode"), report.problems
    assert report.blocks == 1


def test_an_altered_state_hash_is_named_by_its_height_and_breaks_the_next_link(built) -> None:
    path, _ = built
    tamper.alter_state_hash(path, 4)

    report, _ = audit(path, markets())

    assert any(p.startswith("block 4: state_hash") for p in report.problems), report.problems
    assert any(p.startswith("block 5: parent") for p in report.problems), report.problems  # Chain.verify()
    assert len(report.problems) == 2, report.problems


def test_a_bad_signature_is_named_by_height_and_command(tmp_path: Path) -> None:
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000"))
    good = b.order(ALICE, "BTCUSDT", "BUY", "50000.00", "0.00100")
    forged = Request(good.auth.__class__(public_key=good.auth.public_key, timestamp_ms=good.auth.timestamp_ms, signature=bytes(64), payload=good.auth.payload), good.commands)
    b.block(b.deposit(BOB, "USDT", "1000"), b.deposit(BOB, "BTC", "1"), forged)
    b.close()

    report, _ = audit(tmp_path / "blocks.dat", markets())

    assert report.problems == [f"block 2 command 2: the signature does not verify (account {ALICE.account})"]


def test_a_signed_payload_that_does_not_describe_its_command_is_found(tmp_path: Path) -> None:
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "100000"))
    signed = b.order(ALICE, "BTCUSDT", "BUY", "50000.00", "0.00100")
    (cmd,) = signed.commands
    b.block(Request(signed.auth, [cmd._replace(qty=cmd.qty * 10)]))
    b.close()

    report, _ = audit(tmp_path / "blocks.dat", markets())

    assert len(report.problems) == 1 and report.problems[0].startswith("block 2 command 0: the commands differ from what the signed POST /api/v1/order asks for"), report.problems


def test_a_command_of_another_account_under_a_signature_is_found() -> None:
    b = Builder.__new__(Builder)  # only the signing helpers
    b.markets, b.time_ms = markets(), 0
    signed = b.order(ALICE, "BTCUSDT", "BUY", "50000.00", "0.00100")
    (cmd,) = signed.commands
    stolen = cmd._replace(account=BOB.account)

    assert authorization_problem(signed.auth, [stolen], markets()) == f"a command of account {BOB.account} under the signature of account {ALICE.account}"
    assert authorization_problem(signed.auth, [cmd], markets()) is None
    assert "asks for" in authorization_problem(signed.auth, [cmd, cmd], markets())


def test_every_route_authorizes_exactly_its_commands() -> None:
    b = Builder.__new__(Builder)
    b.markets, b.time_ms = markets(), 0
    requests = [
        b.deposit(ALICE, "USDT", "12.5"),
        b.order(ALICE, "ETHUSDT", "SELL", "3000.00", "1.0000", timeInForce="IOC", newClientOrderId="x1"),
        b.batch(ALICE, [{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "100"}, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "1.001", "quantity": "1"}]),
        b.cancel(ALICE, "BTCUSDT", 7),
        b.cancel_all(ALICE),
        b.amend(ALICE, "BTCUSDT", 7, "49000.00"),
    ]
    assert len(requests[2].commands) == 1  # the second order is refused at the edge (price 1.001)

    for r in requests:
        assert authorization_problem(r.auth, r.commands, b.markets) is None, r.auth.payload


def test_a_withdrawal_is_authorized_like_a_deposit(tmp_path: Path) -> None:
    """POST /api/v1/withdraw makes a Withdraw: the audit knows the route (it
    once said the request "makes no commands")."""
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000"))
    withdrawal = b.withdraw(ALICE, "USDT", "250.5")
    b.block(withdrawal)
    b.close()

    report, engine = audit(tmp_path / "blocks.dat", markets())

    assert report.problems == [], report.problems
    assert engine.balances(ALICE.account)["USDT"][0] == b.engine.balances(ALICE.account)["USDT"][0] > 0
    (cmd,) = withdrawal.commands
    doubled = type(cmd)(account=cmd.account, asset=cmd.asset, amount=cmd.amount * 2)
    assert "asks for" in authorization_problem(withdrawal.auth, [doubled], markets())


def test_an_amend_naming_its_order_id_as_a_string_is_the_order_the_api_amends(tmp_path: Path) -> None:
    """The API reads "orderId": "7" as order 7 (pydantic's lax int); the
    audit, going through the same translation, rebuilds the same AmendOrder
    (it once compared the string "7" with 7 and reported a mismatch)."""
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000000"))
    b.block(*[b.order(ALICE, "BTCUSDT", "BUY", f"{49000 + i}.00", "0.01000") for i in range(7)])
    amend = b.amend(ALICE, "BTCUSDT", "7", "48000.00")
    b.block(amend)
    b.close()

    assert json.loads(amend.auth.payload[amend.auth.payload.index(b"{"):])["orderId"] == "7"
    report, engine = audit(tmp_path / "blocks.dat", markets())

    assert report.problems == [], report.problems
    assert engine.order(ALICE.account, "BTCUSDT", 7).price == markets().market("BTCUSDT").price_to_ticks("48000.00")


def test_the_signature_pool_finds_the_same_as_in_process(built) -> None:
    path, _ = built
    report, _ = audit(path, markets(), jobs=2, chunk_auths=2)
    assert report.ok and report.signatures == 10, report.problems

    tamper.replace_in_proposal(path, 6, b"51500.00", b"51600.00")  # the amend's signed payload
    report, _ = audit(path, markets(), jobs=2, chunk_auths=2)
    assert report.problems == ["block 6 command 0: the signature does not verify (account %d)" % BOB.account], report.problems


def test_results_altered_on_disk_are_found(built) -> None:
    path, _ = built

    def edit(body: bytearray, header_at: int, proposal_at: int) -> None:
        body[-1] ^= 0x01  # the last byte of block 3's results

    tamper.rewrite_body(path, 3, edit)
    report, _ = audit(path, markets())

    assert report.problems and report.problems[0].startswith("block 3: the stored results differ from the replay's"), report.problems


def test_at_a_height_the_state_is_the_state_after_that_block(built) -> None:
    path, b = built
    engine = Engine(markets())
    with Chain(path, read_only=True) as chain:
        for block in chain.blocks(1, 4):  # blocks 1..3 through the engine, directly
            proposal, _ = decode_proposal(block.proposal)
            for cmd in proposal.commands:
                engine.apply(cmd, block.header.time_ms)
        expected_hash = chain.header(3).state_hash.hex()

    report, at3 = audit(path, markets(), height_stop=3)
    state = state_at(at3, markets(), depth=5)

    assert report.ok and report.height_stop == 3 and report.blocks == 3
    assert state["stateHash"] == expected_hash == engine.state_hash()
    assert state["books"]["BTCUSDT"] == {"bids": [["49990.00", "0.01500"]], "asks": []}
    by_id = {a["accountId"]: {x["asset"]: (x["free"], x["locked"]) for x in a["balances"]} for a in state["accounts"]}
    assert by_id[str(ALICE.account)]["BTC"][0] == "0.01499700" and by_id[str(ALICE.account)]["USDT"][1] != "0"
    with pytest.raises(AuditError):
        audit(path, markets(), height_stop=8)


def test_a_chain_reset_from_a_snapshot_cannot_be_audited_from_genesis(built, tmp_path: Path) -> None:
    path, _ = built
    with Chain(path) as chain:
        head = chain.head
    other = tmp_path / "reset" / "blocks.dat"
    with Chain(other) as chain:
        chain.reset_to(head)

    report, _ = audit(other, markets())

    assert report.problems == [f"block 8: the chain starts after block 7 (it was reset from a Raft snapshot), so it cannot be audited from genesis; audit another node's chain"]


def test_a_torn_tail_is_reported_and_left_in_place(built) -> None:
    path, _ = built
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x10\x00")
    report, _ = audit(path, markets())

    assert report.problems and report.problems[0].startswith("block 8 (offset %d): a torn record" % size), report.problems
    assert path.stat().st_size == size + 2  # the auditor wrote nothing


def test_a_read_only_chain_refuses_writes_and_a_missing_file(built, tmp_path: Path) -> None:
    path, _ = built
    with Chain(path, read_only=True) as chain:
        assert chain.height == 7
        with pytest.raises(ValueError):
            chain.append(chain.head, b"", b"")
        chain.check_invariants()
    with pytest.raises(AuditError):
        audit(tmp_path / "nothing" / "blocks.dat", markets())
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "empty.dat").write_bytes(b"")
    report, _ = audit(tmp_path / "empty.dat", markets())
    assert not report.ok and "not a chain file" in report.problems[0]


def test_a_damaged_record_with_blocks_after_it_fails_naming_the_block(built) -> None:
    path, _ = built
    offset, _ = tamper.records(path.read_bytes())[1]  # block 2's record, crc left stale
    data = bytearray(path.read_bytes())
    data[offset + 20] ^= 0x01
    path.write_bytes(bytes(data))

    report, _ = audit(path, markets())

    assert report.problems == [f"record at offset {offset} (block 2): crc mismatch, and records follow it; the chain cannot be read past it"]


# ------------------------------------------------------------------ the CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "dex.cli", "audit", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_the_cli_exits_0_on_a_sound_chain_1_on_a_mismatch_2_on_usage(built) -> None:
    path, _ = built

    ok = run_cli("--data", str(path.parent), "--json")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["ok"] and doc["blocks"] == 7 and doc["orders"] == 9 and doc["signatures"] == 10

    at = run_cli("--data", str(path), "--at", "3")
    assert at.returncode == 0, at.stderr
    assert "state after block 3" in at.stdout and "bid         49990.00          0.01500" in at.stdout

    tamper.alter_state_hash(path, 2)
    bad = run_cli("--data", str(path.parent))
    assert bad.returncode == 1
    assert "block 2: state_hash" in bad.stdout and "block 3: parent" in bad.stdout

    assert run_cli("--data", str(path), "--node", "n1").returncode == 2
    assert run_cli("--data", str(path.parent / "missing")).returncode == 2
    assert run_cli("--data", str(path), "--at", "99").returncode == 2


def test_a_replay_the_blocks_refused_is_counted_not_a_problem(tmp_path: Path) -> None:
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000"))
    withdraw = b.withdraw(ALICE, "USDT", "1")
    b.block(withdraw)
    b.block(withdraw, withdraw)
    b.close()

    report, engine = audit(tmp_path / "blocks.dat", markets())

    assert report.problems == []
    assert report.replays_refused == 2
    assert engine.balances(ALICE.account)["USDT"] == (b.engine.balances(ALICE.account)["USDT"][0], 0) == (999 * 10**8, 0)


def test_a_signed_request_that_executed_twice_is_found(tmp_path: Path) -> None:
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000"))
    withdraw = b.withdraw(ALICE, "USDT", "1")
    b.block(withdraw)
    b.guard = ReplayGuard()  # a replica that forgot what it executed
    b.block(withdraw)
    b.close()

    report, _ = audit(tmp_path / "blocks.dat", markets())

    assert "block 3: auth 0 re-uses the signed request first carried in block 2, and it executed again" in report.problems
    assert report.replays_refused == 0


def test_the_signature_phase_keeps_as_many_problems_as_asked_and_counts_the_rest(tmp_path: Path) -> None:
    b = Builder(tmp_path / "blocks.dat")
    b.block(b.deposit(ALICE, "USDT", "1000"))
    forged = []
    for i in range(70):
        good = b.order(ALICE, "BTCUSDT", "BUY", f"{40000 + i}.00", "0.00100")
        forged.append(Request(good.auth.__class__(public_key=good.auth.public_key, timestamp_ms=good.auth.timestamp_ms, signature=bytes(64), payload=good.auth.payload), good.commands))
    b.block(*forged)
    b.close()

    report, _ = audit(tmp_path / "blocks.dat", markets(), problems_max=60)

    assert len(report.problems) == 60 and report.problems_dropped == 10
    assert report.signatures == 71


def test_an_audit_at_a_height_says_it_skipped_the_store_it_was_given(built) -> None:
    path, _ = built

    at3, _ = audit(path, markets(), height_stop=3, database_url="sqlite:///never-opened.db")
    whole, _ = audit(path, markets(), height_stop=3)

    assert at3.store.startswith("not checked: an audit up to a height (--at 3)")
    assert whole.store == "not configured"
