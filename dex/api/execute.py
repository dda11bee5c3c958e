"""Executing a verified signed request on the leader: one function for the
HTTP routes and the forward channel.

A state-changing request is executed in three steps, so that a whole frame
of forwarded requests can go to the block builder at once:

    prepare(node, signed, call) -> Prepared   parse, translate (dex.ledger.translate), pre-checks
    port.submit / port.submit_many             the commands into a block, applied on this node
    prepared.finish(applied) -> Answer        the route's answer from the block's events

`execute(node, signed, call)` runs them for one request (an HTTP route on
the leader), `execute_many(node, items)` for the requests of one channel
frame (dex/api/channel.py): every request's commands are queued in the
builder under one lock, so they share a block when they fit. Both give the
same `Answer` (status, JSON payload, headers, block height), the one the
HTTP route sends; a refusal is an Answer too ({code, msg}), never an
exception.

A `Call` is the request exactly as the user sent and signed it: method,
path, raw query string, body and the three signature headers. It travels
unchanged from a follower to the leader, which recomputes the signed bytes
from it (dex.auth.signed_payload), the same bytes the follower verified.
"""

from __future__ import annotations

import asyncio

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from starlette.datastructures import QueryParams

from dex.api import render
from dex.api.errors import DISABLED, DISCONNECTED, NOT_FOUND, ApiError, Refused, unavailable
from dex.core import limits
from dex.core.commands import Deposit, Withdraw
from dex.core.events import OrderAccepted, OrderAmended, OrderCancelled, OrderDuplicate, OrderRejected
from dex.core.markets import units_to_amount
from dex.core.reasons import Reason
from dex.core.types import OrderStatus
from dex.ledger import translate
from dex.ledger.port import Applied, LedgerUnavailable, TooLarge, Unrecordable
from dex.ledger.translate import AmendRequest, BatchOrders, DepositRequest, NewOrder

# The faucet's fairness: no account may hold more than this many units of an
# asset through the faucet, so 1,024 accounts at the bound are needed to use
# up an asset's whole supply (BALANCE_UNITS_MAX) and lock others out.
FAUCET_ACCOUNT_UNITS_MAX = limits.BALANCE_UNITS_MAX >> 10
assert FAUCET_ACCOUNT_UNITS_MAX * 1024 == limits.BALANCE_UNITS_MAX


@dataclass(frozen=True, slots=True)
class Call:
    """A signed request as received: the exact text and bytes that were signed."""

    method: str
    path: str
    query: str  # the raw query string, as sent (no re-encoding)
    body: bytes
    api_key: str
    timestamp: str
    signature: str  # base64, as sent

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


class Answer(NamedTuple):
    """What the route answers: status, JSON payload, extra headers, and the
    height of the block that holds the request (None: no block)."""

    status: int
    payload: object
    headers: dict[str, str] | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """Commands to submit in one block, and the answer once it is applied."""

    commands: list
    auth: object  # dex.ledger.codec.Auth
    finish: Callable[[Applied], Answer]


def refusal(e: Refused) -> Answer:
    return Answer(e.status, {"code": e.code, "msg": e.msg}, getattr(e, "headers", None))


def failure(e: Exception) -> Answer:
    """The answer to a ledger port's failure (NotLeader, OutcomeUnknown, ...)."""
    return refusal(unavailable(e))


LEDGER_FAILURES = (LedgerUnavailable, Unrecordable, TooLarge)


async def execute(node, signed, call: Call) -> Answer:
    """Execute one verified request on the leader: its Answer."""
    try:
        prepared = prepare(node, signed, call)
        if isinstance(prepared, Answer):
            return prepared
        applied = await node.port.submit(prepared.commands, prepared.auth)
        return prepared.finish(applied)
    except Refused as e:
        return refusal(e)
    except LEDGER_FAILURES as e:
        return failure(e)


async def execute_many(node, items: list, early=None) -> list[Answer]:
    """Execute verified requests [(signed, call)] on the leader, their
    commands queued in the block builder together: their Answers, in order.
    `early([(position, Answer)])`, when given, is called once, before any
    block is waited for, with the answers already known (refused by
    translation or by admission), when some are still to come: an overloaded
    leader's refusals need not wait for the rest of a forwarded frame to
    commit. The returned list holds every answer, those included."""
    answers: list = [None] * len(items)
    batch = []  # (position, Prepared)
    for i, (signed, call) in enumerate(items):
        try:
            prepared = prepare(node, signed, call)
        except Refused as e:
            answers[i] = refusal(e)
            continue
        if isinstance(prepared, Answer):
            answers[i] = prepared
        else:
            batch.append((i, prepared))
    waiting = []
    if batch:
        waits = node.port.submit_many([(p.commands, p.auth) for _, p in batch])
        for (i, prepared), wait in zip(batch, waits):
            if isinstance(wait, asyncio.Future) and wait.done():  # refused at once: no block to wait for
                answers[i] = await _finish(prepared, wait)
            else:
                waiting.append((i, prepared, wait))
    if early is not None and waiting:
        early([(i, answer) for i, answer in enumerate(answers) if answer is not None])
    for i, prepared, wait in waiting:
        answers[i] = await _finish(prepared, wait)
    assert all(a is not None for a in answers)
    return answers


async def _finish(prepared: Prepared, wait) -> Answer:
    try:
        return prepared.finish(await wait)
    except Refused as e:
        return refusal(e)
    except LEDGER_FAILURES as e:
        return failure(e)


def prepare(node, signed, call: Call) -> Prepared | Answer:
    """The request's commands and how to answer it (Refused: refused whole)."""
    op = OPERATIONS.get(call.route)
    if op is None:
        return Answer(404, {"code": NOT_FOUND, "msg": f"No state-changing route {call.route}."})
    return op(node, signed, call)


def not_leader() -> Answer:
    return refusal(ApiError.unavailable(DISCONNECTED, "Forwarded to a node that is no longer the leader. Please try again."))


# ------------------------------------------------------------ the routes


def _reject(events: list) -> None:
    first = events[0] if events else None
    if first.__class__ is OrderRejected:
        raise ApiError.of(first.reason)


def _order_answer(m, events: list, applied: Applied, resp_type: str) -> dict:
    """The answer for one placed order from its events; ApiError if rejected."""
    _reject(events)
    first = events[0]
    if first.__class__ is OrderDuplicate:
        return {
            "symbol": first.symbol,
            "orderId": first.order_id,
            "clientOrderId": first.client_order_id,
            "status": first.status.name,
            "origQty": m.lots_to_qty(first.qty),
            "executedQty": m.lots_to_qty(first.filled),
            "duplicate": True,
            "blockHeight": applied.height,
            "blockHash": applied.block_hash.hex(),
        }
    assert first.__class__ is OrderAccepted, first
    return render.order_result(m, first, events, applied.time_ms, applied.height, applied.block_hash, resp_type)


def _ok(payload, applied: Applied, headers: dict | None = None) -> Answer:
    return Answer(200, payload, headers, applied.height)


def _rejected(applied: Applied, finish: Callable[[], object]) -> Answer:
    """finish()'s payload, or the rejection in the block as an answer (with
    the block's height: the follower waits for it as for any block)."""
    try:
        return _ok(finish(), applied)
    except Refused as e:
        return refusal(e)._replace(height=applied.height)


def place(node, signed, call: Call) -> Prepared:
    o: NewOrder = translate.parse(NewOrder, call.body)
    m, cmd = translate.place_command(node.cfg.markets, o, signed.account, signed.auth.signature)
    return Prepared([cmd], signed.auth, lambda applied: _rejected(applied, lambda: _order_answer(m, applied.results[0], applied, o.newOrderRespType)))


def batch_orders(node, signed, call: Call) -> Prepared | Answer:
    batch: BatchOrders = translate.parse(BatchOrders, call.body)
    answers: list = [None] * len(batch.batchOrders)
    placed = []  # (position, market, command, response type)
    for i, entry in enumerate(translate.batch_commands(node.cfg.markets, batch, signed.account, signed.auth.signature)):
        if isinstance(entry, Refused):
            answers[i] = {"code": entry.code, "msg": entry.msg}
        else:
            placed.append((i, entry[0], entry[1], batch.batchOrders[i].newOrderRespType))
    if not placed:
        return Answer(200, answers)

    def finish(applied: Applied) -> Answer:
        for (i, m, _, resp_type), events in zip(placed, applied.results):
            try:
                answers[i] = _order_answer(m, events, applied, resp_type)
            except Refused as e:
                answers[i] = {"code": e.code, "msg": e.msg}
        # The body is Binance's plain list; the block height travels in a header.
        return _ok(answers, applied, {"X-DEX-BLOCK-HEIGHT": str(applied.height)})

    return Prepared([cmd for _, _, cmd, _ in placed], signed.auth, finish)


def cancel(node, signed, call: Call) -> Prepared:
    params = QueryParams(call.query)
    symbol = params.get("symbol")
    if symbol is None:
        raise ApiError(400, translate.MANDATORY_PARAM, "symbol: Field required")
    orig_cid = params.get("origClientOrderId")
    m, cmd = translate.cancel_command(node.cfg.markets, signed.account, symbol, translate.query_int(params, "orderId"), orig_cid)

    def finish(applied: Applied) -> Answer:
        events = applied.results[0]

        def answer() -> dict:
            _reject(events)
            ev = events[0]
            assert ev.__class__ is OrderCancelled, ev
            record = node.history.order(ev.order_id)
            out = render.order_record(m, record) if record is not None else {"symbol": symbol, "orderId": ev.order_id}
            out.update(status="CANCELED", blockHeight=applied.height, blockHash=applied.block_hash.hex())
            if orig_cid:
                out["origClientOrderId"] = orig_cid
            return out

        return _rejected(applied, answer)

    return Prepared([cmd], signed.auth, finish)


def cancel_all(node, signed, call: Call) -> Prepared:
    symbol = QueryParams(call.query).get("symbol")
    cmd = translate.cancel_all_command(node.cfg.markets, signed.account, symbol)

    def finish(applied: Applied) -> Answer:
        events = applied.results[0]

        def answer() -> list:
            _reject(events)
            cancelled = [ev for ev in events if ev.__class__ is OrderCancelled]
            records = node.history.orders([ev.order_id for ev in cancelled])
            markets: dict = {}
            block_hash = applied.block_hash.hex()
            answers = []
            for ev, record in zip(cancelled, records):
                m = markets.get(ev.symbol)
                if m is None:
                    m = markets[ev.symbol] = node.cfg.markets.market(ev.symbol)
                out = render.order_record(m, record) if record is not None else {"symbol": ev.symbol, "orderId": ev.order_id}
                out.update(status="CANCELED", blockHeight=applied.height, blockHash=block_hash)
                answers.append(out)
            return answers

        answer_ = _rejected(applied, answer)
        # A plain list, as Binance answers; the height travels in a header.
        return answer_._replace(headers={"X-DEX-BLOCK-HEIGHT": str(applied.height)}) if answer_.status == 200 else answer_

    return Prepared([cmd], signed.auth, finish)


def amend(node, signed, call: Call) -> Prepared:
    a: AmendRequest = translate.parse(AmendRequest, call.body)
    m, cmd = translate.amend_command(node.cfg.markets, a, signed.account)

    def finish(applied: Applied) -> Answer:
        events = applied.results[0]

        def answer() -> dict:
            _reject(events)
            amended = events[0]
            assert amended.__class__ is OrderAmended, amended
            oid = amended.order_id
            fills, expired = render.taker_outcome(events, oid)
            record = node.history.order(oid)
            if record is not None:
                out = render.order_record(m, record)
            else:  # older than the read model: what the engine still knows
                view = node.port.order(signed.account, a.symbol, oid)
                out = render.order_view(m, view) if view is not None else {"symbol": a.symbol, "orderId": oid}
                out.update(price=render.price(m, amended.price), origQty=render.qty(m, amended.qty))
                if view is None:
                    out["status"] = (OrderStatus.EXPIRED if expired is not None else OrderStatus.FILLED).name
            if a.origClientOrderId:
                out["origClientOrderId"] = a.origClientOrderId
            out.update(
                priorityKept=amended.priority_kept,
                transactTime=applied.time_ms,
                blockHeight=applied.height,
                blockHash=applied.block_hash.hex(),
                fills=render.taker_fills(m, fills),
            )
            if expired is not None:
                out["expiryReason"] = expired.reason.name
            return out

        return _rejected(applied, answer)

    return Prepared([cmd], signed.auth, finish)


def faucet_enabled(node) -> None:
    """The faucet setting turns deposits and withdrawals on or off (403)."""
    if not node.cfg.faucet:
        raise ApiError(403, DISABLED, "The faucet is disabled on this cluster.")


def _faucet(node, signed, call: Call, command: type[Deposit] | type[Withdraw]) -> Prepared:
    """A deposit or a withdrawal of the signer's own balance. A withdrawal
    over the free balance is -4026. With a clientTransferId the account's
    first transfer under that id executes and every later one is answered
    with its outcome (TransferIds in dex/ledger/replay.py), as an order's
    client id is."""
    faucet_enabled(node)
    d: DepositRequest = translate.parse(DepositRequest, call.body)
    asset, cmd = translate.faucet_command(node.cfg.markets, d, signed.account, command)
    tid = cmd.transfer_id
    if tid is not None:
        known = node.port.transfer(signed.account, tid)
        if known is not None:  # a retry of a transfer that executed: no block needed
            return Answer(200, _transfer_duplicate(node, tid, known), None, known.height)
    if command is Deposit:
        free, locked = node.port.balances(signed.account)[asset.name]
        if free + locked + cmd.amount > FAUCET_ACCOUNT_UNITS_MAX:
            raise ApiError(
                400, Reason.BALANCE_OVERFLOW.code,
                f"Faucet limit: an account may hold at most {units_to_amount(asset, FAUCET_ACCOUNT_UNITS_MAX)} {asset.name} "
                "from the faucet (so that no account can use up the supply for others).",
            )

    def finish(applied: Applied) -> Answer:
        events = applied.results[0]

        def answer() -> dict:
            first = events[0] if events else None
            if first.__class__ is OrderRejected and first.reason == Reason.DUPLICATE_TRANSFER:
                known = node.port.transfer(signed.account, tid)
                if known is not None:  # the same id raced into an earlier block
                    return _transfer_duplicate(node, tid, known)
            _reject(events)
            out = {"asset": d.asset, "amount": d.amount, "free": units_to_amount(asset, first.free), "blockHeight": applied.height, "blockHash": applied.block_hash.hex()}
            if tid is not None:
                out["clientTransferId"] = tid
            return out

        return _rejected(applied, answer)

    return Prepared([cmd], signed.auth, finish)


def _transfer_duplicate(node, tid: str, known) -> dict:
    """The answer to a transfer id already used: the first transfer's outcome
    (`known`, a dex.ledger.replay.Transfer from the port)."""
    header = node.port.chain.header(known.height)
    asset = node.cfg.markets.asset(known.asset)
    out = {
        "asset": known.asset,
        "amount": units_to_amount(asset, known.amount),
        "free": units_to_amount(asset, known.free),
        "clientTransferId": tid,
        "type": known.type_name,
        "duplicate": True,
        "blockHeight": known.height,
    }
    if header is not None:
        out["blockHash"] = header.hash.hex()
    return out


def deposit(node, signed, call: Call) -> Prepared:
    return _faucet(node, signed, call, Deposit)


def withdraw(node, signed, call: Call) -> Prepared:
    return _faucet(node, signed, call, Withdraw)


# "METHOD path" -> prepare: every route that makes commands (the translator's list).
OPERATIONS: dict[str, Callable] = {
    translate.ORDER: place,
    translate.BATCH_ORDERS: batch_orders,
    translate.CANCEL: cancel,
    translate.CANCEL_ALL: cancel_all,
    translate.AMEND: amend,
    translate.DEPOSIT: deposit,
    translate.WITHDRAW: withdraw,
}
assert tuple(OPERATIONS) == translate.COMMAND_ROUTES
