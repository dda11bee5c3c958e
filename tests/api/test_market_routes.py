"""Klines, the 24 h ticker and /metrics on a real four-node cluster."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import httpx

from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster

SYMBOL = "BTCUSDT"
METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+)$')


def _trade(cluster: Cluster) -> tuple[str, list[dict]]:
    """Three trades on BTCUSDT through the leader; returns its URL and the trades."""
    leader = cluster.wait_leader()
    url = cluster.url(leader)
    with Client(url, Keypair.generate()) as seller, Client(url, Keypair.generate()) as buyer:
        seller.deposit("BTC", "1")
        buyer.deposit("USDT", "100000")
        seller.place_order(SYMBOL, "SELL", price="50000.00", quantity="0.01000")
        seller.place_order(SYMBOL, "SELL", price="50010.00", quantity="0.02000")
        taker = buyer.place_order(SYMBOL, "BUY", price="50010.00", quantity="0.02500")
        assert len(taker["fills"]) == 2, taker
        buyer.place_order(SYMBOL, "BUY", price="49000.00", quantity="0.00100")
        taker = seller.place_order(SYMBOL, "SELL", price="49000.00", quantity="0.00200")
        assert len(taker["fills"]) == 1, taker  # its other 0.001 rests as the best ask
        buyer.place_order(SYMBOL, "BUY", price="48000.00", quantity="0.00100")  # the best bid
        trades = seller.trades(SYMBOL, 100)
    assert len(trades) == 3, trades
    return url, trades


def _get(url: str, path: str, **params) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=5.0, trust_env=False)


def test_klines_ticker_and_metrics_match_the_trades(cluster: Cluster) -> None:
    url, trades = _trade(cluster)
    prices = [Decimal(t["price"]) for t in trades]

    # klines, 1m: one candle per minute that holds trades, built from exactly these trades
    r = _get(url, "/api/v1/klines", symbol=SYMBOL, interval="1m")
    assert r.status_code == 200, r.text
    candles = r.json()
    buckets: dict[int, list[dict]] = {}
    for t in trades:
        buckets.setdefault(t["time"] - t["time"] % 60_000, []).append(t)
    assert len(candles) == len(buckets)
    if len(buckets) == 1:
        assert len(candles) == 1
    for c, (open_ms, ts) in zip(candles, sorted(buckets.items())):
        assert len(c) == 12 and c[11] == "0"
        assert c[0] == open_ms and c[6] == open_ms + 59_999
        ps = [Decimal(t["price"]) for t in ts]
        assert (Decimal(c[1]), Decimal(c[2]), Decimal(c[3]), Decimal(c[4])) == (ps[0], max(ps), min(ps), ps[-1])
        assert Decimal(c[5]) == sum(Decimal(t["qty"]) for t in ts)
        assert Decimal(c[7]) == sum(Decimal(t["quoteQty"]) for t in ts)
        assert c[8] == len(ts)
        assert Decimal(c[9]) == sum(Decimal(t["qty"]) for t in ts if not t["isBuyerMaker"])
        assert all(isinstance(x, str) for x in c[1:6] + [c[7], c[9], c[10]])

    # bounds and errors
    r = _get(url, "/api/v1/klines", symbol=SYMBOL, interval="7m")
    assert r.status_code == 400 and r.json() == {"code": -1120, "msg": "Invalid interval."}
    for params in ({"interval": "1m", "limit": 1001}, {"interval": "1m", "limit": 0}, {"interval": "1m", "startTime": 5, "endTime": 4}):
        r = _get(url, "/api/v1/klines", symbol=SYMBOL, **params)
        assert r.status_code == 400 and set(r.json()) == {"code", "msg"}, (params, r.text)
    r = _get(url, "/api/v1/klines", symbol="NOPE", interval="1m")
    assert r.status_code == 400 and r.json()["code"] == -1121
    assert len(_get(url, "/api/v1/klines", symbol=SYMBOL, interval="1d", limit=1).json()) == 1

    # ticker/24hr
    r = _get(url, "/api/v1/ticker/24hr", symbol=SYMBOL)
    assert r.status_code == 200, r.text
    tk = r.json()
    assert Decimal(tk["lastPrice"]) == prices[-1]
    assert Decimal(tk["lastQty"]) == Decimal(trades[-1]["qty"])
    assert Decimal(tk["openPrice"]) == prices[0]
    assert Decimal(tk["highPrice"]) == max(prices) and Decimal(tk["lowPrice"]) == min(prices)
    assert Decimal(tk["priceChange"]) == prices[-1] - prices[0]
    assert Decimal(tk["volume"]) == sum(Decimal(t["qty"]) for t in trades)
    assert Decimal(tk["quoteVolume"]) == sum(Decimal(t["quoteQty"]) for t in trades)
    assert tk["count"] == 3
    assert (tk["firstId"], tk["lastId"]) == (trades[0]["id"], trades[-1]["id"])
    assert tk["closeTime"] == trades[-1]["time"] and tk["openTime"] == tk["closeTime"] - 86_400_000
    depth = _get(url, "/api/v1/depth", symbol=SYMBOL, limit=1).json()
    assert [tk["bidPrice"], tk["bidQty"]] == depth["bids"][0]
    assert [tk["askPrice"], tk["askQty"]] == depth["asks"][0]
    everything = _get(url, "/api/v1/ticker/24hr").json()
    assert isinstance(everything, list) and {t["symbol"] for t in everything} >= {SYMBOL, "ETHUSDT"}
    assert next(t for t in everything if t["symbol"] == SYMBOL) == tk
    assert next(t for t in everything if t["symbol"] == "ETHUSDT")["count"] == 0
    assert _get(url, "/api/v1/ticker/24hr", symbol="NOPE").status_code == 400

    # /metrics
    head = _get(url, "/api/v1/cluster/self").json()["headHeight"]
    r = _get(url, "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        assert match, f"not an exposition line: {line!r}"
        value = float(match.group(3))
        assert not math.isnan(value)
        samples[match.group(1) + (match.group(2) or "")] = value
    assert samples["dex_head_height"] >= head
    assert samples['dex_trades_total{symbol="BTCUSDT"}'] == 3
    assert samples['dex_trades_total{symbol="ETHUSDT"}'] == 0
    assert samples['dex_resting_orders{symbol="BTCUSDT"}'] == 3  # asks 0.005 @ 50010, 0.001 @ 49000; bid 0.001 @ 48000
    assert samples["dex_is_leader"] == 1 and samples["dex_has_quorum"] == 1
    for name in ("dex_raft_term", "dex_commit_index", "dex_last_applied", "dex_pending_commands", "dex_inflight_blocks"):
        assert name in samples, name

