"""The dashboard in a real browser (Debian's headless Chromium, driven by
Playwright) against a real four-node cluster: the page loads clean, its live
views follow orders placed through the API, an order placed through the page
reaches the book, and killing the leader from the cluster view shows a new
leader while the page, whose own node was the one killed, stays live.

Every wait is Playwright's own (expect(...), wait_for_function) with a
timeout; the `page` fixture fails a test on any console error it did not
declare expected.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from dex.api.dashboard import SECRET_HEADER
from dex.auth import Keypair
from dex.client import Client

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

SYMBOL = "BTCUSDT"
READY_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 15_000  # a stream update, through a loaded 2-core machine
FAILOVER_SHOWN_S_MAX = 15.0  # "a new leader within seconds"
NETWORK_ERRORS = r"ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed|Failed to load resource"


def open_page(page, url: str, tab: str):
    page.goto(f"{url}/#{tab}")
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=READY_TIMEOUT_MS)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=READY_TIMEOUT_MS)


def ladder_row(page, ladder: str, side: str, price: str):
    return page.locator(f"#{ladder} .row.{side}[data-price='{price}']")


def funded(urls: list[str], **amounts: str) -> Client:
    c = Client(urls, Keypair.generate())
    for asset, amount in amounts.items():
        c.deposit(asset, amount)
    return c


def test_market_view_follows_orders_placed_through_the_api(cluster, page, screenshot):
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    open_page(page, cluster.url("n1"), "market")
    # Offline by construction: every asset and every call goes to the node itself.
    assert requested and all(u.startswith(cluster.url("n1") + "/") for u in requested), requested
    assert any(u.endswith("/static/vendor/lightweight-charts.mjs") for u in requested)
    seller = funded(cluster.urls, BTC="50")
    buyer = funded(cluster.urls, USDT="5000000")

    # A book of a few levels each side, placed on other nodes than the page's.
    seller.batch_orders([{"symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "price": f"{50100 + 7 * i}.00", "quantity": f"0.{3 + i}0000"} for i in range(8)])
    buyer.batch_orders([{"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "price": f"{49900 - 9 * i}.00", "quantity": f"0.{2 + i}5000"} for i in range(8)])
    expect(ladder_row(page, "market-ladder", "ask", "50100.00")).to_contain_text("0.30000", timeout=LIVE_TIMEOUT_MS)
    expect(ladder_row(page, "market-ladder", "bid", "49900.00")).to_contain_text("0.25000", timeout=LIVE_TIMEOUT_MS)

    # A taker: the tape shows the trade, the ladder the level's new size, the ticker the last price.
    answer = buyer.place_order(SYMBOL, "BUY", price="50100.00", quantity="0.10000")
    assert answer["status"] == "FILLED", answer
    trade_id = answer["fills"][0]["tradeId"]
    expect(page.locator(f"#tape tr[data-trade='{trade_id}']")).to_contain_text("50100.00", timeout=LIVE_TIMEOUT_MS)
    expect(ladder_row(page, "market-ladder", "ask", "50100.00")).to_contain_text("0.20000", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#ticker-last")).to_have_text("50100.00", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function("() => window.dex.views.market.candles.data().length >= 1", timeout=LIVE_TIMEOUT_MS)

    # A few more trades, so the candles and the tape have something to show.
    for i in range(6):
        buyer.place_order(SYMBOL, "BUY", price=f"{50100 + 7 * (i // 2)}.00", quantity="0.05000")
        seller.place_order(SYMBOL, "SELL", price=f"{49900 - 9 * (i // 3)}.00", quantity="0.04000")
    expect(page.locator("#tape tr")).to_have_count(13, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#ticker-count")).to_have_text("13", timeout=LIVE_TIMEOUT_MS)  # re-read at most once a second
    assert page.evaluate("window.dex.conn.wsState") == "live"
    # The page's book, kept from the snapshot and diffs, is the node's book at the same height.
    depth = Client(cluster.url("n1")).depth(SYMBOL, limit=1000)
    page.wait_for_function("(h) => window.dex.views.market.book.lastUpdateId >= h", arg=depth["lastUpdateId"], timeout=LIVE_TIMEOUT_MS)
    book = page.evaluate("""() => {
        const b = window.dex.views.market.book;
        return {height: b.lastUpdateId, bids: [...b.bids], asks: [...b.asks]};
    }""")
    assert book["height"] == depth["lastUpdateId"], (book["height"], depth["lastUpdateId"])  # nothing was placed since
    assert sorted(book["bids"]) == sorted(depth["bids"]) and sorted(book["asks"]) == sorted(depth["asks"])
    for width in (1280, 1480):
        pane_px = page.evaluate("window.dex.views.market.candlesFitWidth")
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_function(  # the chart resized, and fitted its bars to the new width
            "(old) => { const v = window.dex.views.market; const w = v.chart.timeScale().width(); return w !== old && w === v.candlesFitWidth; }",
            arg=pane_px, timeout=LIVE_TIMEOUT_MS)
        check_candles_fill_the_chart(page)
        check_depth_axes(page, lowest=49837.0, highest=50149.0, base="BTC", quote="USDT")
    screenshot(page, "market")

    # Another market and back: the streams follow the choice, the book comes back from a fresh snapshot.
    page.select_option("#symbol", "ETHUSDT")
    expect(page.locator("#ticker")).to_contain_text("ETHUSDT", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#market-ladder .row.ask")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    page.select_option("#symbol", SYMBOL)
    expect(ladder_row(page, "market-ladder", "ask", "50149.00")).to_contain_text("0.10000", timeout=LIVE_TIMEOUT_MS)
    subscribed = page.evaluate("[...window.dex.conn.streams.keys()].sort()")
    assert subscribed == sorted(["btcusdt@depth", "btcusdt@trade", "btcusdt@kline_1m", "blocks", "cluster", "user"]), subscribed


# Where the candle chart puts its bars: each bar's x (lightweight-charts' own
# coordinates, in the chart's pane), the pane's width and the bar spacing.
CANDLE_BARS_JS = """() => {
    const v = window.dex.views.market;
    const scale = v.chart.timeScale();
    const n = v.candles.data().length;
    const xs = [...Array(n).keys()].map((i) => scale.logicalToCoordinate(i));
    return {n, xs, width: scale.width(), spacing: scale.logicalToCoordinate(1) - scale.logicalToCoordinate(0)};
}"""
CANDLE_SPACING_DEFAULT_PX = 6  # the library's, which left a short history a sliver at the right edge


def candle_extent(bars: dict) -> tuple[float, float]:
    """The share of the pane the bars cover, and where their middle lies (0 left .. 1 right)."""
    left, right = bars["xs"][0] - bars["spacing"] / 2, bars["xs"][-1] + bars["spacing"] / 2
    return (right - left) / bars["width"], (left + right) / 2 / bars["width"]


def check_candles_fill_the_chart(page) -> None:
    """A short history is spread over the chart, centred, not squeezed into its right
    edge; a long one is drawn as the library draws it, newest at the right."""
    real = page.evaluate(CANDLE_BARS_JS)  # this test's trades: a minute or two of candles
    assert 1 <= real["n"] <= 3, real
    share, middle = candle_extent(real)
    assert real["spacing"] >= 4 * CANDLE_SPACING_DEFAULT_PX and 0.35 <= middle <= 0.65, real

    # Six minutes of history, then five hundred, through the same path as the REST klines.
    # Their times end at the newest real candle, so a live update stays in order.
    def history(n: int) -> dict:
        page.evaluate("""(n) => {
            const v = window.dex.views.market;
            const last = v.candles.data().at(-1);
            return v.showCandles([...Array(n).keys()].map((i) => [(last.time - 60 * (n - 1 - i)) * 1000, "50000.00", "50100.00", "49900.00", String(50000 + i)]));
        }""", n)  # resolves once the bars are fitted
        return page.evaluate(CANDLE_BARS_JS)

    six = history(6)
    share, middle = candle_extent(six)
    assert share >= 0.35 and 0.4 <= middle <= 0.6, six
    long = history(500)
    assert abs(long["spacing"] - CANDLE_SPACING_DEFAULT_PX) < 0.5 and long["xs"][-1] >= 0.9 * long["width"], long
    page.evaluate("""() => window.dex.views.market.conn.get("/api/v1/klines", {symbol: "BTCUSDT", interval: "1m", limit: 500})
        .then((k) => window.dex.views.market.showCandles(k))""")
    assert page.evaluate(CANDLE_BARS_JS)["n"] == real["n"]


DEPTH_AXES_JS = """() => {
    const box = document.querySelector("#depth-chart").getBoundingClientRect();
    const read = (selector) => [...document.querySelectorAll(selector)].map((e) => {
        const r = e.getBoundingClientRect();
        return {text: e.textContent, value: Number(e.dataset.value), left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    });
    return {box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom},
            x: read("#depth-axes .tick.x"), y: read("#depth-axes .tick.y"),
            price: document.querySelector("#depth-axis-price")?.textContent, qty: document.querySelector("#depth-axis-qty")?.textContent};
}"""


def check_depth_axes(page, *, lowest: float, highest: float, base: str, quote: str) -> None:
    """The depth chart has a labelled price axis and a labelled quantity axis: several
    round values each, in order, inside the chart, not overlapping, and their titles."""
    page.wait_for_function(  # drawn for the canvas's current width
        "() => document.querySelector('#depth-axes').dataset.width === String(document.querySelector('#depth-chart').clientWidth)",
        timeout=LIVE_TIMEOUT_MS)
    axes = page.evaluate(DEPTH_AXES_JS)
    box, xs, ys = axes["box"], axes["x"], axes["y"]
    assert len(xs) >= 4 and len(ys) >= 3, axes
    assert axes["price"] == f"price ({quote})" and axes["qty"] == f"cumulative quantity ({base})", axes
    for t in xs + ys:
        assert float(t["text"]) == pytest.approx(t["value"]), t
        assert box["left"] - 0.5 <= t["left"] and t["right"] <= box["right"] + 0.5, (t, box)
        assert box["top"] - 0.5 <= t["top"] and t["bottom"] <= box["bottom"] + 0.5, (t, box)
    for a, b in zip(xs, xs[1:]):
        assert a["value"] < b["value"] and a["right"] < b["left"], (a, b)  # left to right, apart
    for a, b in zip(ys, ys[1:]):
        assert a["value"] < b["value"] and a["top"] > b["bottom"], (a, b)  # bottom to top, apart
    assert lowest - (highest - lowest) * 0.1 <= xs[0]["value"] and xs[-1]["value"] <= highest + (highest - lowest) * 0.1, xs
    assert ys[0]["value"] == 0, ys


def test_trading_panel_places_and_cancels_an_order(cluster, page, screenshot):
    open_page(page, cluster.url("n2"), "trading")
    page.click("#faucet")
    expect(page.locator("#balances tr[data-asset='USDT']")).to_contain_text("100000.00000000", timeout=LIVE_TIMEOUT_MS)
    api_key = page.locator("#acct-key").inner_text()
    assert len(api_key) == 64 and int(api_key, 16) >= 0  # the browser's own Ed25519 public key, hex

    page.fill("#order-price", "49000.00")
    page.fill("#order-qty", "0.02000")
    page.click("#place")
    expect(page.locator("#order-msg")).to_contain_text("NEW", timeout=LIVE_TIMEOUT_MS)
    order_id = int(page.locator("#order-msg").inner_text().split()[1])
    expect(page.locator(f"#open-orders tr[data-order='{order_id}']")).to_contain_text("49000.00", timeout=LIVE_TIMEOUT_MS)
    expect(ladder_row(page, "trading-ladder", "bid", "49000.00")).to_contain_text("0.02000", timeout=LIVE_TIMEOUT_MS)
    # In the cluster's book too, as every node sees it.
    depth = Client(cluster.urls).depth(SYMBOL)
    assert ["49000.00", "0.02000"] in depth["bids"], depth

    # Someone sells into it: the page shows the fill and the rest still open.
    seller = funded(cluster.urls, BTC="1")
    sold = seller.place_order(SYMBOL, "SELL", price="49000.00", quantity="0.00500")
    expect(page.locator("#fills tr")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(f"#open-orders tr[data-order='{order_id}']")).to_contain_text("0.00500", timeout=LIVE_TIMEOUT_MS)
    expect(ladder_row(page, "trading-ladder", "bid", "49000.00")).to_contain_text("0.01500", timeout=LIVE_TIMEOUT_MS)
    page.fill("#order-price", "49500.00")
    page.click("#place")  # a second order, for the picture
    expect(page.locator("#open-orders tr")).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
    screenshot(page, "trading")

    page.locator(f"#open-orders tr[data-order='{order_id}'] button").click()
    expect(page.locator(f"#open-orders tr[data-order='{order_id}']")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    expect(ladder_row(page, "trading-ladder", "bid", "49000.00")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    page.click("#tabs button[data-tab='market']")
    expect(ladder_row(page, "market-ladder", "bid", "49500.00")).to_be_visible()
    assert ["49000.00", "0.01500"] not in Client(cluster.urls).depth(SYMBOL)["bids"]

    # The explorer: the chain verifies, and the newest block is the cancel, signed by the page's key.
    page.click("#tabs button[data-tab='explorer']")
    expect(page.locator("#verify-status")).to_have_attribute("data-ok", "1", timeout=LIVE_TIMEOUT_MS)
    page.locator("#blocks tr").first.click()
    expect(page.locator("#block-commands")).to_contain_text("CancelOrder", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#block-commands td.signer").first).to_have_attribute("data-key", api_key, timeout=LIVE_TIMEOUT_MS)
    # The block of the sell that filled the page's order: its trade, and the seller's signature.
    page.locator(f"#blocks tr[data-height='{sold['blockHeight']}']").click()
    expect(page.locator("#block-trades tbody tr")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#block-trades tbody tr")).to_contain_text("49000.00")
    expect(page.locator("#block-commands td.signer").first).to_have_attribute("data-key", seller.keys.api_key)
    screenshot(page, "explorer")


def test_killing_the_leader_from_the_cluster_view(cluster, page, console, screenshot):
    leader = cluster.wait_leader()
    url = cluster.url(leader)
    secret = cluster.cfg.secret()
    # The controls refuse without the secret, on a real node.
    for headers in ({}, {SECRET_HEADER: "wrong-" + secret}):
        r = httpx.post(f"{url}/api/v1/admin/nodes/{leader}/kill", headers=headers, trust_env=False)
        assert r.status_code == 403, r.text
    assert leader in cluster.alive()

    # The page is served by the leader itself: when it dies, the page must move.
    open_page(page, url, "cluster")
    expect(page.locator(f"#nodes tr.leader[data-node='{leader}']")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # Hash comparison: a status in which one node's state hash differs at the same height shows red ...
    # The view renders synchronously; the DOM is read in the same task as the injected status,
    # since the cluster stream pushes a real status at least once a second and would replace it.
    shown = page.evaluate("""() => {
        const view = window.dex.views.cluster;
        const st = structuredClone(view.status);
        st.nodes[1].headHeight = st.nodes[0].headHeight;
        st.nodes[1].stateHash = "ff" + st.nodes[0].stateHash;
        view.show(st);
        const pill = document.querySelector("#hash-agreement");
        return {
            text: pill.textContent,
            cls: pill.className,
            node: st.nodes[1].id,
            mismatched: [...document.querySelectorAll(`#nodes tr[data-node='${st.nodes[1].id}'] td.mismatch`)].length,
        };
    }""")
    assert "DISAGREE" in shown["text"], shown
    assert shown["cls"] == "pill bad", shown
    assert shown["mismatched"] == 2, shown
    # ... and the next real status puts it right.
    expect(page.locator("#hash-agreement")).to_contain_text("hashes agree", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#nodes td.mismatch")).to_have_count(0)
    trader = funded(cluster.urls, USDT="100000")
    before = trader.place_order(SYMBOL, "BUY", price="45000.00", quantity="0.01000")
    expect(page.locator(f"#block-feed tr[data-height='{before['blockHeight']}']")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    page.fill("#admin-secret", secret)
    page.click("#admin-secret-save")

    console.allow(NETWORK_ERRORS)  # the killed node's refused connections, from here on
    killed_at = time.monotonic()
    page.click(f"button[data-kill='{leader}']")
    page.wait_for_function(
        """(old) => {
            const row = document.querySelector('#nodes tr.leader');
            const pill = document.querySelector('#conn-status');
            return row && row.dataset.node !== old && pill.dataset.state === 'live' && pill.dataset.node !== old;
        }""",
        arg=leader,
        timeout=FAILOVER_SHOWN_S_MAX * 1000,
    )
    shown_s = time.monotonic() - killed_at
    new_leader = page.locator("#nodes tr.leader").get_attribute("data-node")
    assert new_leader != leader and leader not in cluster.alive()
    expect(page.locator(f"#nodes tr[data-node='{leader}']")).to_contain_text("NO", timeout=LIVE_TIMEOUT_MS)
    print(f"new leader {new_leader} shown {shown_s:.2f}s after the kill of {leader}")

    # Still live: an order placed now shows in the block feed and the book.
    answer = trader.place_order(SYMBOL, "BUY", price="45678.00", quantity="0.01000")
    expect(page.locator(f"#block-feed tr[data-height='{answer['blockHeight']}']")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(ladder_row(page, "market-ladder", "bid", "45678.00")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function(
        "([node, height]) => Number(document.querySelector(`#nodes tr[data-node='${node}']`)?.dataset.height) >= height",
        arg=[new_leader, answer["blockHeight"]],
        timeout=LIVE_TIMEOUT_MS,
    )
    screenshot(page, "cluster")

    # And the killed node comes back from the same view.
    page.click(f"button[data-restart='{leader}']")
    expect(page.locator(f"#nodes tr[data-node='{leader}']")).to_contain_text("yes", timeout=45_000)
    cluster.wait_converged(cluster.ids, height_min=answer["blockHeight"])


def test_the_block_feed_shows_recent_blocks_on_a_quiet_cluster(cluster, page):
    trader = funded(cluster.urls, USDT="1000")
    height = trader.deposit("USDT", "1")["blockHeight"]
    cluster.wait_converged(cluster.ids, height_min=height)

    open_page(page, cluster.url(cluster.ids[0]), "cluster")  # opened after the last block: no stream message will bring it

    expect(page.locator(f"#block-feed tr[data-height='{height}']")).to_be_visible(timeout=LIVE_TIMEOUT_MS)


def test_a_filter_failure_names_the_markets_tick_and_step(cluster, page, console):
    console.allow(r"status of 400 \(Bad Request\) \(http://[^)]*/api/v1/order\)")  # the refusals this test asks for
    open_page(page, cluster.url("n1"), "trading")
    expect(page.locator("#acct-key")).to_have_text(re.compile("^[0-9a-f]{64}$"), timeout=LIVE_TIMEOUT_MS)

    page.fill("#order-price", "49000.001")
    page.fill("#order-qty", "0.02000")
    page.click("#place")
    expect(page.locator("#order-msg")).to_contain_text("PRICE_FILTER: the price must be a whole multiple of the tick, 0.01", timeout=LIVE_TIMEOUT_MS)

    page.fill("#order-price", "49000.00")
    page.fill("#order-qty", "0.0200001")
    page.click("#place")
    expect(page.locator("#order-msg")).to_contain_text("LOT_SIZE: the quantity must be a whole multiple of the step, 0.00001", timeout=LIVE_TIMEOUT_MS)
