"""A chain built without Raft, for the store's tests and benchmark.

`ChainBuilder` applies lists of commands to an Engine block by block exactly
as `Replica.apply_block` does (same header, same roots, same state hash) and
appends each block to a Chain file; `trading_blocks` makes a stream of
blocks whose trades rest across blocks (each block's taker sweeps the makers
placed in the block before), so a writer batch both inserts orders and
updates earlier ones.
"""

from __future__ import annotations

from dex.core.commands import Deposit, PlaceOrder
from dex.core.types import OrderType, Side, TimeInForce
from dex.engine import Engine
from dex.ledger.chain import Chain
from dex.ledger.codec import (
    GENESIS_PARENT,
    NO_AUTH,
    BlockHeader,
    Proposal,
    decode_proposal,
    encode_events,
    encode_proposal,
    merkle_root,
)
from dex.ledger.state import block_time_ms, block_version

SYMBOL = "BTCUSDT"
MID_TICKS = 5_000_000
MAKERS_PER_BLOCK_MAX = 4000
TIME_STEP_MS = 5
MAKER_LOTS = 20  # 0.0002 BTC at 50,000: above the 1 USDT minimum notional


class ChainBuilder:
    def __init__(self, path, markets, *, leader: str = "n1", term: int = 1, time_ms: int = 1_700_000_000_000) -> None:
        self.chain = Chain(path)
        self.engine = Engine(markets)
        self.leader = leader
        self.term = term
        self.time_ms = time_ms
        assert self.chain.height == 0, "ChainBuilder starts a new chain"

    def block(self, commands: list) -> BlockHeader:
        """Apply one block of commands; returns its header."""
        proposal = Proposal(leader=self.leader, term=self.term, time_ms=self.time_ms, commands=tuple(commands), auth_index=(NO_AUTH,) * len(commands))
        raw = encode_proposal(proposal)
        _, leaves = decode_proposal(raw)
        parent = self.chain.head
        time_ms = block_time_ms(parent, proposal)
        version = block_version(parent, proposal)
        results = [self.engine.apply(cmd, time_ms) for cmd in commands]
        encoded = [encode_events(events) for events in results]
        header = BlockHeader(
            height=1 if parent is None else parent.height + 1,
            parent=self.chain.head_hash if parent is not None else GENESIS_PARENT,
            leader=self.leader,
            term=self.term,
            time_ms=time_ms,
            commands_count=len(commands),
            commands_root=merkle_root(leaves),
            results_root=merkle_root(encoded),
            state_hash=bytes.fromhex(self.engine.state_hash(version)),
            version=version,
        )
        self.chain.append(header, raw, b"".join(encoded))
        self.time_ms += TIME_STEP_MS
        return header

    def close(self) -> None:
        self.chain.close()


def fund(accounts: list[int]) -> list:
    out = []
    for a in accounts:
        out.append(Deposit(account=a, asset="USDT", amount=10**17))
        out.append(Deposit(account=a, asset="BTC", amount=10**15))
    return out


def trading_blocks(builder: ChainBuilder, blocks: int, makers_per_block: int, *, first_account: int = 1000) -> int:
    """Append `blocks` blocks; each places `makers_per_block` small sells
    and one buy that takes the sells of the block before. Returns trades made."""
    assert 1 <= makers_per_block <= MAKERS_PER_BLOCK_MAX
    makers = list(range(first_account, first_account + 16))
    taker = first_account + 100
    if builder.chain.height == 0:
        builder.block(fund(makers + [taker]))
    trades = 0
    resting = 0
    for b in range(blocks):
        commands = []
        if resting:
            commands.append(PlaceOrder(account=taker, symbol=SYMBOL, side=Side.BUY, type=OrderType.LIMIT, tif=TimeInForce.IOC, price=MID_TICKS + 10, qty=resting * MAKER_LOTS, client_order_id=f"t{builder.chain.height}"))
            trades += resting
        for i in range(makers_per_block):
            commands.append(PlaceOrder(account=makers[i % len(makers)], symbol=SYMBOL, side=Side.SELL, price=MID_TICKS + (i % 10), qty=MAKER_LOTS))
        resting = makers_per_block
        builder.block(commands)
    return trades
