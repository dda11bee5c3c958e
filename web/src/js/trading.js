// Trading panel: the browser's demo account (keys.js), funded from the
// faucet; place and cancel orders; open orders, fills and balances. The
// panel re-reads them after each action and whenever the user stream says
// something happened to the account.
import { Account } from "./keys.js";
import { $, el, row, show, throttle, time, toast } from "./util.js";

const FAUCET = [["USDT", "100000"], ["BTC", "10"], ["ETH", "100"]];
const FILLS_LIMIT = 50;
const REFRESH_MS = 250; // at most this often, however many user events arrive

export class TradingView {
  constructor(conn, shared, market) {
    this.conn = conn;
    this.shared = shared;
    this.market = market;
    this.side = "BUY";
    this.account = null;
    this.refresh = throttle(() => this.load().catch((e) => console.warn("dex: account refresh:", e.message)), REFRESH_MS);
  }

  async start() {
    this.account = await Account.loadOrCreate();
    this.showKey();
    this.conn.login = this.account.loginParams;
    this.conn.relogin().catch(() => {});
    this.conn.subscribe("user", () => this.refresh());
    this.market.onPrice = (p) => { if ($("#order-type").value !== "MARKET") $("#order-price").value = p; };

    for (const b of document.querySelectorAll("#side button")) b.addEventListener("click", () => this.setSide(b.dataset.side));
    $("#order-type").addEventListener("change", () => this.typeChanged());
    $("#order-form").addEventListener("submit", (e) => { e.preventDefault(); this.place(); });
    $("#faucet").addEventListener("click", () => this.fund());
    $("#cancel-all").addEventListener("click", () => this.cancelAll());
    $("#new-key").addEventListener("click", async () => {
      this.account = await Account.create();
      this.conn.login = this.account.loginParams;
      this.showKey();
      this.conn.relogin().catch(() => {});
      this.refresh();
    });
    this.symbolChanged(this.shared.symbol);
    await this.load();
  }

  visible(on) { if (on) this.refresh(); }

  symbolChanged(symbol) {
    for (const s of document.querySelectorAll(".sym-label")) s.textContent = symbol;
    this.refresh();
  }

  showKey() {
    $("#acct-key").textContent = this.account.publicHex;
    $("#acct-id").textContent = "–";
  }

  // A MARKET order takes no price and no time in force: both are disabled
  // and emptied, so no stale value looks as if it applied.
  typeChanged() {
    const market = $("#order-type").value === "MARKET";
    for (const id of ["#order-price", "#order-tif"]) $(id).disabled = market;
    if (market) {
      $("#order-price").value = "";
      $("#order-tif").value = "";
    } else if (!$("#order-tif").value) {
      $("#order-tif").value = "GTC";
    }
  }

  setSide(side) {
    this.side = side;
    for (const b of document.querySelectorAll("#side button")) b.classList.toggle("active", b.dataset.side === side);
    const place = $("#place");
    place.className = side === "BUY" ? "buy" : "sell";
    place.textContent = `Place ${side.toLowerCase()} order`;
  }

  signed(method, path, { query = null, body = null } = {}) {
    return this.conn.request(method, path, { query, body, sign: this.account.sign });
  }

  message(text, kind) {
    const m = $("#order-msg");
    m.textContent = text;
    m.className = `msg ${kind}`;
  }

  async fund() {
    try {
      for (const [asset, amount] of FAUCET) await this.signed("POST", "/api/v1/deposit", { body: { asset, amount } });
      toast(`funded: ${FAUCET.map(([a, n]) => `${n} ${a}`).join(", ")}`, "ok");
    } catch (e) {
      toast(`faucet: ${e.message}`);
    }
    this.refresh();
  }

  async place() {
    const type = $("#order-type").value;
    const order = {
      symbol: this.shared.symbol, side: this.side, type,
      quantity: $("#order-qty").value.trim(),
      newClientOrderId: `web-${crypto.randomUUID().slice(0, 18)}`, // kept across retries: never placed twice
    };
    if (type === "LIMIT") {
      order.price = $("#order-price").value.trim();
      order.timeInForce = $("#order-tif").value;
    }
    this.message("placing…", "");
    try {
      const r = await this.signed("POST", "/api/v1/order", { body: order });
      this.message(`order ${r.orderId} ${r.status} in block ${r.blockHeight}`, "ok");
    } catch (e) {
      this.message(this.explain(e), "error");
    }
    this.refresh();
  }

  // A filter failure says which rule of this market the order broke.
  explain(e) {
    const market = (this.shared.markets || []).find((m) => m.symbol === this.shared.symbol);
    const filter = (type) => market?.filters.find((f) => f.filterType === type);
    if (e.code === -1013 && /PRICE_FILTER/.test(e.message) && filter("PRICE_FILTER")) {
      return `${e.msg}: the price must be a whole multiple of the tick, ${filter("PRICE_FILTER").tickSize} (${e.code})`;
    }
    if (e.code === -1013 && /LOT_SIZE/.test(e.message) && filter("LOT_SIZE")) {
      return `${e.msg}: the quantity must be a whole multiple of the step, ${filter("LOT_SIZE").stepSize} (${e.code})`;
    }
    return e.message;
  }

  async cancel(symbol, orderId) {
    try {
      const r = await this.signed("DELETE", "/api/v1/order", { query: { symbol, orderId } });
      this.message(`order ${r.orderId} canceled in block ${r.blockHeight}`, "ok");
    } catch (e) {
      this.message(e.message, "error");
    }
    this.refresh();
  }

  async cancelAll() {
    try {
      const r = await this.signed("DELETE", "/api/v1/openOrders");
      this.message(`${r.length} order(s) canceled`, "ok");
    } catch (e) {
      this.message(e.message, "error");
    }
    this.refresh();
  }

  async load() {
    const symbol = this.shared.symbol;
    const [account, open, fills] = await Promise.all([
      this.signed("GET", "/api/v1/account"),
      this.signed("GET", "/api/v1/openOrders"),
      this.signed("GET", "/api/v1/myTrades", { query: { symbol, limit: FILLS_LIMIT } }),
    ]);
    $("#acct-id").textContent = account.accountId;
    show($("#balances"), account.balances, (bs) => bs.map((b) => row([b.asset, b.free, b.locked], { "data-asset": b.asset })));
    show($("#open-orders"), open, (os) => os.map((o) => row([
      String(o.orderId), o.symbol, el("td", { class: o.side }, o.side), o.type, o.price, o.origQty, o.executedQty, o.status,
      el("td", {}, el("button", { class: "ghost small", onclick: () => this.cancel(o.symbol, o.orderId) }, "cancel")),
    ], { "data-order": o.orderId })));
    show($("#fills"), fills, (fs) => fs.slice().reverse().map((f) => row([
      String(f.id), String(f.orderId), el("td", { class: f.isBuyer ? "BUY" : "SELL" }, f.isBuyer ? "BUY" : "SELL"),
      f.price, f.qty, `${f.commission} ${f.commissionAsset}`, f.isMaker ? "maker" : "taker", time(f.time),
    ])));
  }
}
