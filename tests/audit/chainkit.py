"""Chains built in-process, as a leader and its replica would build them:
signed requests turned into commands by the API's own translation, proposals
applied through dex.ledger.state.apply_proposal and appended to a Chain."""

from __future__ import annotations

import json
from pathlib import Path

from dex.auth import Keypair, signed_payload
from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, Withdraw
from dex.core.markets import MarketConfig, amount_to_units, load_markets
from dex.engine import Engine
from dex.ledger.chain import Chain
from dex.ledger.codec import GENESIS_PARENT, NO_AUTH, Auth, Proposal, decode_proposal, encode_proposal
from dex.ledger import translate
from dex.ledger.replay import ReplayGuard
from dex.ledger.state import apply_proposal

REPO = Path(__file__).resolve().parents[2]
MARKETS_FILE = REPO / "configs" / "markets.toml"
TIME_MS_START = 1_700_000_000_000


def markets() -> MarketConfig:
    return load_markets(MARKETS_FILE)


class Request:
    """One signed request and the commands the API makes of it."""

    def __init__(self, auth: Auth | None, commands: list) -> None:
        self.auth = auth
        self.commands = commands


class Builder:
    def __init__(self, path: Path, config: MarketConfig | None = None, *, chain_version: int = 2) -> None:
        """`chain_version` 1 builds a chain as dex did before header version 2
        (its first proposal names version 1)."""
        self.chain_version = chain_version
        self.markets = config or markets()
        self.chain = Chain(path)
        self.engine = Engine(self.markets)
        self.guard = ReplayGuard()
        self.parent = None
        self.parent_hash = GENESIS_PARENT
        self.time_ms = TIME_MS_START
        self.results: list[list] = []  # per block: per command, its events

    # ------------------------------------------------------------ requests

    def _sign(self, keys: Keypair, method: str, path: str, body: dict | None, query: str = "") -> tuple[Auth, bytes]:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        self.time_ms += 1
        payload = signed_payload(self.time_ms, method, path, query, raw)
        return Auth(public_key=keys.public, timestamp_ms=self.time_ms, signature=keys.sign(payload), payload=payload), raw

    def _place(self, auth: Auth, keys: Keypair, body: dict, index: int = 0):
        return translate.place_command(self.markets, translate.NewOrder.model_validate(body), keys.account, auth.signature, index)[1]

    def deposit(self, keys: Keypair, asset: str, amount: str) -> Request:
        auth, _ = self._sign(keys, "POST", "/api/v1/deposit", {"asset": asset, "amount": amount})
        units = amount_to_units(self.markets.asset(asset), amount)
        return Request(auth, [Deposit(account=keys.account, asset=asset, amount=units)])

    def withdraw(self, keys: Keypair, asset: str, amount: str) -> Request:
        auth, _ = self._sign(keys, "POST", "/api/v1/withdraw", {"asset": asset, "amount": amount})
        units = amount_to_units(self.markets.asset(asset), amount)
        return Request(auth, [Withdraw(account=keys.account, asset=asset, amount=units)])

    def order(self, keys: Keypair, symbol: str, side: str, price: str, quantity: str, **extra) -> Request:
        body = {"symbol": symbol, "side": side, "type": "LIMIT", "price": price, "quantity": quantity, **extra}
        auth, _ = self._sign(keys, "POST", "/api/v1/order", body)
        return Request(auth, [self._place(auth, keys, body)])

    def batch(self, keys: Keypair, orders: list[dict]) -> Request:
        """The API places the orders it does not refuse alone at the edge."""
        auth, _ = self._sign(keys, "POST", "/api/v1/batchOrders", {"batchOrders": orders})
        commands = []
        for i, o in enumerate(orders):
            try:
                commands.append(self._place(auth, keys, o, i))
            except translate.Refused:
                continue
        return Request(auth, commands)

    def cancel(self, keys: Keypair, symbol: str, order_id: int) -> Request:
        query = f"symbol={symbol}&orderId={order_id}"
        auth, _ = self._sign(keys, "DELETE", "/api/v1/order", None, query)
        return Request(auth, [CancelOrder(account=keys.account, symbol=symbol, order_id=order_id)])

    def cancel_all(self, keys: Keypair, symbol: str | None = None) -> Request:
        query = f"symbol={symbol}" if symbol else ""
        auth, _ = self._sign(keys, "DELETE", "/api/v1/openOrders", None, query)
        return Request(auth, [CancelAll(account=keys.account, symbol=symbol)])

    def amend(self, keys: Keypair, symbol: str, order_id: int | str, new_price: str) -> Request:
        """`order_id` as sent: a string of digits is what the API takes too."""
        body = {"symbol": symbol, "orderId": order_id, "newPrice": new_price}
        auth, _ = self._sign(keys, "PUT", "/api/v1/order/amend", body)
        ticks = self.markets.market(symbol).price_to_ticks(new_price)
        return Request(auth, [AmendOrder(account=keys.account, symbol=symbol, order_id=int(order_id), price=ticks)])

    # -------------------------------------------------------------- blocks

    def block(self, *requests: Request, time_ms: int | None = None) -> int:
        auths: list[Auth] = []
        commands: list = []
        indexes: list[int] = []
        for r in requests:
            index = NO_AUTH
            if r.auth is not None:
                index = len(auths)
                auths.append(r.auth)
            commands.extend(r.commands)
            indexes.extend([index] * len(r.commands))
        self.time_ms += 10
        raw = encode_proposal(Proposal(leader="n1", term=1, time_ms=time_ms or self.time_ms, commands=tuple(commands), auth_index=tuple(indexes), auths=tuple(auths),
                                      chain_version=self.chain_version))
        proposal, leaves = decode_proposal(raw)
        header, encoded, results = apply_proposal(self.engine, self.guard, self.parent, self.parent_hash, proposal, leaves)
        self.parent_hash = self.chain.append(header, raw, b"".join(encoded))
        self.parent = header
        self.results.append(results)
        return header.height

    def close(self) -> None:
        self.chain.close()
