// Market view: order book ladder and depth chart (<sym>@depth), trade tape
// (<sym>@trade), 1-minute candles (<sym>@kline_1m, drawn by
// lightweight-charts) and the 24 h ticker for the chosen market.
import { createChart, CandlestickSeries, ColorType } from "../vendor/lightweight-charts.mjs";
import { $, el, fixed, num, throttle, time } from "./util.js";

const LADDER_LEVELS = 15; // per side, on screen
const TAPE_ROWS_MAX = 60;
const KLINES_LIMIT = 500;
const TICKER_REFRESH_MS = 1_000; // the ticker is re-read at most this often, on trades
const DEPTH_CHART_LEVELS = 100;

export class MarketView {
  constructor(conn, shared) {
    this.conn = conn;
    this.shared = shared;
    this.symbol = null;
    this.book = { bids: new Map(), asks: new Map(), lastUpdateId: null };
    this.trades = [];
    this.offs = [];
    this.ladders = [$("#market-ladder"), $("#trading-ladder")];
    this.onPrice = null; // the trading view fills its price from a click on the ladder
    this.refreshTicker = throttle(() => this.loadTicker(), TICKER_REFRESH_MS);
    this.redraw = throttle(() => this.render(), 100);
    this.updates = 0; // depth events applied, for tests
  }

  async start() {
    this.chart = createChart($("#candles"), {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: "#161a1e" }, textColor: "#848e9c" },
      grid: { vertLines: { color: "#1f242a" }, horzLines: { color: "#1f242a" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#2b3139" },
      rightPriceScale: { borderColor: "#2b3139" },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: "#0ecb81", downColor: "#f6465d", borderVisible: false, wickUpColor: "#0ecb81", wickDownColor: "#f6465d",
    });
    new ResizeObserver(() => this.drawDepth()).observe($("#depth-chart"));
    await this.symbolChanged(this.shared.symbol);
  }

  visible(on) { if (on) this.drawDepth(); }

  async symbolChanged(symbol) {
    for (const off of this.offs) off();
    this.symbol = symbol;
    const market = this.shared.markets.find((m) => m.symbol === symbol);
    const tick = market.filters.find((f) => f.filterType === "PRICE_FILTER").tickSize;
    const precision = Math.max(0, (tick.split(".")[1] || "").replace(/0+$/, "").length);
    this.candles.applyOptions({ priceFormat: { type: "price", precision, minMove: Number(tick) } });
    this.quotePrecision = precision; // a quote amount is shown to the tick, as prices are
    this.book = { bids: new Map(), asks: new Map(), lastUpdateId: null };
    this.trades = [];
    const s = symbol.toLowerCase();
    this.offs = [
      this.conn.subscribe(`${s}@depth`, (d) => this.onDepth(d)),
      this.conn.subscribe(`${s}@trade`, (t) => this.onTrade(t)),
      this.conn.subscribe(`${s}@kline_1m`, (k) => this.onKline(k)),
    ];
    const [trades, klines] = await Promise.all([
      this.conn.get("/api/v1/trades", { symbol, limit: TAPE_ROWS_MAX }),
      this.conn.get("/api/v1/klines", { symbol, interval: "1m", limit: KLINES_LIMIT }),
      this.loadTicker(),
    ]);
    if (this.symbol !== symbol) return;
    const known = new Set(this.trades.map((t) => t.id));
    const fromRest = trades.filter((t) => !known.has(t.id)).map((t) => ({ id: t.id, p: t.price, q: t.qty, T: t.time, m: t.isBuyerMaker }));
    this.trades = this.trades.concat(fromRest.reverse()).sort((a, b) => b.id - a.id).slice(0, TAPE_ROWS_MAX);
    this.candles.setData(klines.map((k) => ({ time: k[0] / 1000, open: num(k[1]), high: num(k[2]), low: num(k[3]), close: num(k[4]) })));
    if (this.book.lastUpdateId === null) {
      // No snapshot from the stream yet (or no stream): start from REST; the
      // stream's snapshot, when it comes, replaces this.
      const depth = await this.conn.get("/api/v1/depth", { symbol, limit: 1000 });
      if (this.symbol === symbol && this.book.lastUpdateId === null) this.setBook(depth.bids, depth.asks, depth.lastUpdateId);
    }
    this.render();
  }

  async loadTicker() {
    const symbol = this.symbol;
    const t = await this.conn.get("/api/v1/ticker/24hr", { symbol });
    if (symbol !== this.symbol) return;
    const change = num(t.priceChange);
    const cls = change > 0 ? "up" : change < 0 ? "down" : "";
    const box = $("#ticker");
    box.replaceChildren(
      el("div", {}, el("span", { class: "k" }, t.symbol), el("span", { class: `last ${cls}`, id: "ticker-last" }, t.lastPrice)),
      el("div", {}, el("span", { class: "k" }, "24h change"), el("span", { class: cls }, `${t.priceChange} (${t.priceChangePercent}%)`)),
      el("div", {}, el("span", { class: "k" }, "24h high"), t.highPrice),
      el("div", {}, el("span", { class: "k" }, "24h low"), t.lowPrice),
      el("div", {}, el("span", { class: "k" }, "24h volume"), t.volume),
      el("div", {}, el("span", { class: "k" }, "24h quote volume"), el("span", { id: "ticker-quote-volume" }, fixed(t.quoteVolume, this.quotePrecision))),
      el("div", {}, el("span", { class: "k" }, "trades"), el("span", { id: "ticker-count" }, String(t.count))),
      el("div", {}, el("span", { class: "k" }, "bid / ask"), `${t.bidPrice} / ${t.askPrice}`),
    );
  }

  setBook(bids, asks, lastUpdateId) {
    this.book = { bids: new Map(bids), asks: new Map(asks), lastUpdateId };
  }

  onDepth(d) {
    if (d.s !== this.symbol) return;
    if (d.e === "depthSnapshot") {
      this.setBook(d.bids, d.asks, d.lastUpdateId);
    } else if (d.e === "depthUpdate") {
      if (this.book.lastUpdateId === null) return; // waiting for the snapshot
      if (d.u <= this.book.lastUpdateId) return; // already in the book (a REST snapshot)
      if (d.U > this.book.lastUpdateId + 1) {
        // A gap: drop the book and ask for a new snapshot.
        this.book.lastUpdateId = null;
        this.conn.resubscribe(`${this.symbol.toLowerCase()}@depth`);
        return;
      }
      for (const [p, q] of d.b) num(q) === 0 ? this.book.bids.delete(p) : this.book.bids.set(p, q);
      for (const [p, q] of d.a) num(q) === 0 ? this.book.asks.delete(p) : this.book.asks.set(p, q);
      this.book.lastUpdateId = d.u;
    }
    this.updates += 1;
    this.redraw();
  }

  onTrade(t) {
    if (t.s !== this.symbol) return;
    this.trades.unshift({ id: t.t, p: t.p, q: t.q, T: t.T, m: t.m });
    this.trades.length = Math.min(this.trades.length, TAPE_ROWS_MAX);
    this.renderTape();
    this.refreshTicker();
  }

  onKline(d) {
    if (d.s !== this.symbol) return;
    const k = d.k;
    this.candles.update({ time: k.t / 1000, open: num(k.o), high: num(k.h), low: num(k.l), close: num(k.c) });
  }

  sides() {
    const bids = [...this.book.bids].sort((a, b) => num(b[0]) - num(a[0]));
    const asks = [...this.book.asks].sort((a, b) => num(a[0]) - num(b[0]));
    return { bids, asks };
  }

  render() {
    this.renderLadders();
    this.renderTape();
    this.drawDepth();
  }

  renderLadders() {
    const { bids, asks } = this.sides();
    const topAsks = asks.slice(0, LADDER_LEVELS);
    const topBids = bids.slice(0, LADDER_LEVELS);
    const cumulative = (levels) => { let sum = 0; return levels.map(([p, q]) => [p, q, (sum += num(q))]); };
    const a = cumulative(topAsks).reverse();
    const b = cumulative(topBids);
    const max = Math.max(a.length ? a[0][2] : 0, b.length ? b[b.length - 1][2] : 0) || 1;
    const line = (side, [p, q, c]) =>
      el("div", { class: `row ${side}`, "data-price": p, onclick: () => this.onPrice?.(p) },
        el("div", { class: "bar", style: `width:${(100 * c / max).toFixed(1)}%` }),
        el("span", {}, p), el("span", {}, q), el("span", {}, c.toFixed(6).replace(/\.?0+$/, "")));
    const spread = topAsks.length && topBids.length ? (num(topAsks[0][0]) - num(topBids[0][0])) : null;
    const last = this.trades[0];
    for (const box of this.ladders) {
      box.replaceChildren(
        el("div", { class: "row head" }, el("span", {}, "price"), el("span", {}, "qty"), el("span", {}, "total")),
        ...a.map((x) => line("ask", x)),
        el("div", { class: "spread" }, last ? last.p : "–", el("span", { class: "hint" }, spread === null ? "" : `  spread ${+spread.toFixed(8)}`)),
        ...b.map((x) => line("bid", x)),
      );
      box.dataset.height = this.book.lastUpdateId ?? "";
    }
  }

  renderTape() {
    $("#tape").replaceChildren(...this.trades.map((t) =>
      el("tr", { "data-trade": t.id }, el("td", { class: t.m ? "down" : "up" }, t.p), el("td", {}, t.q), el("td", {}, time(t.T)))));
  }

  drawDepth() {
    const canvas = $("#depth-chart");
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    const { bids, asks } = this.sides();
    const b = bids.slice(0, DEPTH_CHART_LEVELS);
    const a = asks.slice(0, DEPTH_CHART_LEVELS);
    if (!b.length && !a.length) {
      g.fillStyle = "#848e9c";
      g.fillText("empty book", width / 2 - 25, height / 2);
      return;
    }
    const prices = [...b, ...a].map(([p]) => num(p));
    let lo = Math.min(...prices), hi = Math.max(...prices);
    if (hi === lo) { lo -= 1; hi += 1; }
    const total = (levels) => levels.reduce((s, [, q]) => s + num(q), 0);
    const maxQ = Math.max(total(b), total(a)) || 1;
    const x = (p) => 40 + (width - 80) * (num(p) - lo) / (hi - lo);
    const y = (q) => height - 16 - (height - 28) * q / maxQ;
    const side = (levels, stroke, fill) => {
      if (!levels.length) return;
      g.beginPath();
      g.moveTo(x(levels[0][0]), y(0));
      let sum = 0;
      for (const [p, q] of levels) { g.lineTo(x(p), y(sum)); sum += num(q); g.lineTo(x(p), y(sum)); }
      const edge = levels === b ? 40 : width - 40;
      g.lineTo(edge, y(sum));
      g.lineTo(edge, y(0));
      g.closePath();
      g.fillStyle = fill; g.fill();
      g.strokeStyle = stroke; g.stroke();
    };
    side(b, "#0ecb81", "rgba(14,203,129,.15)");
    side(a, "#f6465d", "rgba(246,70,93,.15)");
    g.fillStyle = "#848e9c";
    g.font = "11px system-ui";
    g.fillText(String(+lo.toFixed(8)), 40, height - 3);
    g.fillText(String(+hi.toFixed(8)), width - 90, height - 3);
    g.fillText(`max ${+maxQ.toFixed(6)}`, 4, 12);
  }
}
