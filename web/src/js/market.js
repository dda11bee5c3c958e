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
// Candles: lightweight-charts keeps bars 6 px apart against the right edge,
// which leaves a short history a sliver there. Until the bars fill the chart
// at that spacing, they are spread over it, centred, at most this far apart.
const CANDLE_SPACING_PX = 6; // the library's default, once the history is long
const CANDLE_SPACING_MAX_PX = 48;
const CANDLE_SLOTS_SPARE = 2; // a bar's width of room either side when they fill the chart
// Depth chart: room for the axes' labels, and about how far apart their ticks are.
const DEPTH_PAD = { left: 64, right: 12, top: 20, bottom: 22 };
const DEPTH_PRICE_TICK_PX = 70;
const DEPTH_LABEL_HALF_PX = 20; // half a price label's width: a tick closer to the edge goes unlabelled
const DEPTH_QTY_TICK_PX = 40;

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
    this.candleCount = 0; // bars in the series, and the newest one's open time (s), for fitting a short history
    this.candleLast = 0;
    this.candlesFitWidth = 0; // the pane width the last fit was made for (tests wait on it)
    this.chart.timeScale().subscribeSizeChange(() => this.fitCandles()); // after the chart's own resize
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
    this.assets = { base: market.baseAsset, quote: market.quoteAsset };
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
    this.showCandles(klines);
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
    if (k.t / 1000 > this.candleLast) {
      this.candleCount += 1;
      this.candleLast = k.t / 1000;
      this.fitCandlesSoon();
    }
  }

  // REST klines rows ([openTime, open, high, low, close, ...]) as the whole
  // series; resolves once the bars are fitted.
  showCandles(klines) {
    this.candleCount = klines.length;
    this.candleLast = klines.length ? klines[klines.length - 1][0] / 1000 : 0;
    this.fitCandles(); // the spacing and offset first, which the new data keeps ...
    this.candles.setData(klines.map((k) => ({ time: k[0] / 1000, open: num(k[1]), high: num(k[2]), low: num(k[3]), close: num(k[4]) })));
    return this.fitCandlesSoon(); // ... and again once the library has settled it
  }

  // The library settles new data on an animation frame (keeping its scroll
  // position): fit after it, two frames on, else the old position wins.
  fitCandlesSoon() {
    return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => { this.fitCandles(); resolve(); })));
  }

  // A short history spread over the chart, centred, bars at most
  // CANDLE_SPACING_MAX_PX apart; a long one as the library shows it (6 px
  // apart, the newest at the right edge, scrolled by the user).
  fitCandles() {
    const scale = this.chart.timeScale();
    const width = scale.width();
    const n = this.candleCount;
    if (!width || !n) return;
    this.candlesFitWidth = width;
    if (n * CANDLE_SPACING_PX >= width) {
      if (scale.options().rightOffset !== 0) { // fitted as a short history before (only that sets one)
        scale.applyOptions({ barSpacing: CANDLE_SPACING_PX, rightOffset: 0 });
        scale.setVisibleLogicalRange({ from: n - 0.5 - width / CANDLE_SPACING_PX, to: n - 0.5 }); // newest at the right edge
      }
      return;
    }
    // The newest bar `rightOffset` bars from the right edge: half the free
    // slots there centre the bars. scrollToPosition without its animation
    // (scrollToRealTime animates), so the chart is where it should be at once.
    const spacing = Math.min(CANDLE_SPACING_MAX_PX, width / (n + CANDLE_SLOTS_SPARE));
    const free = width / spacing - n;
    scale.applyOptions({ barSpacing: spacing, rightOffset: free / 2 });
    scale.scrollToPosition(free / 2, false);
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
    const axes = { x: [], y: [] };
    if (!b.length && !a.length) {
      g.fillStyle = "#848e9c";
      g.font = "11px system-ui";
      g.textAlign = "center";
      g.fillText("empty book", width / 2, height / 2);
      this.showDepthAxes(axes, width, height);
      return;
    }
    const prices = [...b, ...a].map(([p]) => num(p));
    let lo = Math.min(...prices), hi = Math.max(...prices);
    const margin = (hi - lo) * 0.02 || Math.max(hi * 0.001, 1);
    lo -= margin; hi += margin;
    const total = (levels) => levels.reduce((s, [, q]) => s + num(q), 0);
    const maxQ = (Math.max(total(b), total(a)) || 1) * 1.08; // headroom above the deeper side
    const left = DEPTH_PAD.left, right = width - DEPTH_PAD.right, top = DEPTH_PAD.top, bottom = height - DEPTH_PAD.bottom;
    const x = (p) => left + (right - left) * (num(p) - lo) / (hi - lo);
    const y = (q) => bottom - (bottom - top) * q / maxQ;

    // Grid lines at each labelled tick (the labels are elements over the canvas).
    g.strokeStyle = "#1f242a";
    g.lineWidth = 1;
    axes.x = niceTicks(lo, hi, Math.max(2, Math.floor((right - left) / DEPTH_PRICE_TICK_PX)))
      .map((v) => ({ v, at: x(v) })).filter((t) => t.at + DEPTH_LABEL_HALF_PX <= width);
    axes.y = niceTicks(0, maxQ, Math.max(2, Math.floor((bottom - top) / DEPTH_QTY_TICK_PX))).map((v) => ({ v, at: y(v) }));
    for (const t of axes.x) { g.beginPath(); g.moveTo(Math.round(t.at) + 0.5, top); g.lineTo(Math.round(t.at) + 0.5, bottom); g.stroke(); }
    for (const t of axes.y) { g.beginPath(); g.moveTo(left, Math.round(t.at) + 0.5); g.lineTo(right, Math.round(t.at) + 0.5); g.stroke(); }
    g.strokeStyle = "#2b3139";
    g.beginPath(); g.moveTo(left + 0.5, top); g.lineTo(left + 0.5, bottom + 0.5); g.lineTo(right, bottom + 0.5); g.stroke();

    const side = (levels, stroke, fill) => {
      if (!levels.length) return;
      g.beginPath();
      g.moveTo(x(levels[0][0]), y(0));
      let sum = 0;
      for (const [p, q] of levels) { g.lineTo(x(p), y(sum)); sum += num(q); g.lineTo(x(p), y(sum)); }
      const edge = levels === b ? left : right;
      g.lineTo(edge, y(sum));
      g.lineTo(edge, y(0));
      g.closePath();
      g.fillStyle = fill; g.fill();
      g.strokeStyle = stroke; g.stroke();
    };
    side(b, "#0ecb81", "rgba(14,203,129,.15)");
    side(a, "#f6465d", "rgba(246,70,93,.15)");
    this.showDepthAxes(axes, width, height);
  }

  // The axes' labels and titles as elements over the canvas: crisp at any
  // pixel ratio, and readable by tests and screen readers.
  showDepthAxes(axes, width, height) {
    const box = $("#depth-axes");
    box.dataset.width = String(width); // the canvas width these labels were placed for
    const { base, quote } = this.assets ?? { base: "", quote: "" };
    const priceText = (v) => v.toFixed(decimalsOf(axes.x));
    const qtyText = (v) => v.toFixed(decimalsOf(axes.y));
    box.replaceChildren(
      ...axes.x.map((t) => el("span", { class: "tick x", "data-value": String(t.v), style: `left:${t.at.toFixed(1)}px; top:${height - DEPTH_PAD.bottom + 4}px` }, priceText(t.v))),
      ...axes.y.map((t) => el("span", { class: "tick y", "data-value": String(t.v), style: `right:${(width - DEPTH_PAD.left + 6).toFixed(1)}px; top:${t.at.toFixed(1)}px` }, qtyText(t.v))),
      ...(axes.x.length ? [
        el("span", { class: "title x", id: "depth-axis-price", style: `right:${DEPTH_PAD.right}px; top:${height - DEPTH_PAD.bottom - 16}px` }, `price (${quote})`),
        el("span", { class: "title y", id: "depth-axis-qty", style: `left:${DEPTH_PAD.left + 6}px; top:2px` }, `cumulative quantity (${base})`),
      ] : []),
    );
  }
}

// About `count` round values (1, 2 or 5 times a power of ten apart) inside [lo, hi].
function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

// The decimals that tell a set of ticks apart (their step's).
function decimalsOf(ticks) {
  if (ticks.length < 2) return 0;
  const step = ticks[1].v - ticks[0].v;
  return Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
}
