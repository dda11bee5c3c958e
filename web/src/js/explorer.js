// Block explorer: the list of blocks (newest first, paged), one block's
// header, orders with their signatures, events and trades, and this node's
// chain verification (GET /api/v1/chain/verify re-reads the chain file).
import { $, el, row, short, dateTime } from "./util.js";

const PAGE_BLOCKS = 40; // the API allows up to 100
const LIVE_REFRESH_MS = 1_000;

export class ExplorerView {
  constructor(conn) {
    this.conn = conn;
    this.fromHeight = null; // null: follow the head
    this.selected = null;
    this.shown = false;
    this.dirty = false;
  }

  async start() {
    this.conn.subscribe("blocks", () => { this.dirty = true; });
    $("#blocks-newer").addEventListener("click", () => { this.fromHeight = null; this.loadList(); });
    $("#blocks-older").addEventListener("click", () => {
      const last = this.lastShown;
      if (last > 1) { this.fromHeight = last - 1; this.loadList(); }
    });
    $("#verify").addEventListener("click", () => this.verify());
    setInterval(() => {
      if (this.shown && this.dirty && this.fromHeight === null) { this.dirty = false; this.loadList(); }
    }, LIVE_REFRESH_MS);
  }

  visible(on) {
    this.shown = on;
    if (on) { this.loadList(); this.verify(); }
  }

  async loadList() {
    const query = { limit: PAGE_BLOCKS };
    if (this.fromHeight !== null) query.fromHeight = this.fromHeight;
    const page = await this.conn.get("/api/v1/blocks", query);
    this.lastShown = page.blocks.length ? page.blocks[page.blocks.length - 1].height : 0;
    $("#blocks").replaceChildren(...page.blocks.map((b) => {
      const tr = row([String(b.height), short(b.hash, 16), b.leader ?? "–", String(b.commandsCount), dateTime(b.time)],
        { "data-height": b.height, class: b.height === this.selected ? "selected" : null });
      tr.addEventListener("click", () => this.open(b.height));
      return tr;
    }));
    if (this.selected === null && page.blocks.length) this.open(page.blocks[0].height);
  }

  async verify() {
    const pill = $("#verify-status");
    pill.className = "pill";
    pill.textContent = "verifying…";
    try {
      const v = await this.conn.get("/api/v1/chain/verify");
      pill.className = `pill ${v.ok ? "ok" : "bad"}`;
      pill.textContent = v.ok
        ? `verified on ${v.node}: blocks ${v.baseHeight + 1}..${v.height} sound (${v.tookMs} ms)`
        : `${v.problemsCount} problem(s) on ${v.node}: ${v.problems[0]}`;
      pill.dataset.ok = v.ok ? "1" : "0";
    } catch (e) {
      pill.className = "pill bad";
      pill.textContent = `could not verify: ${e.message}`;
    }
  }

  async open(height) {
    this.selected = height;
    for (const tr of document.querySelectorAll("#blocks tr")) tr.classList.toggle("selected", Number(tr.dataset.height) === height);
    const b = await this.conn.get(`/api/v1/blocks/${height}`);
    const h = b.header;
    const kv = (k, v) => el("tr", {}, el("td", { class: "hint" }, k), el("td", {}, el("code", {}, String(v))));
    const columns = ["#", "command", "account", "symbol", "side", "type", "price", "qty", "signer", "signature"];
    const commands = b.commands.flatMap((c, i) => {
      const auth = c.auth === null ? null : b.auths[c.auth];
      const main = el("tr", { "data-command": i },
        el("td", {}, String(i)), el("td", {}, c.command), el("td", {}, c.account ?? "–"), el("td", {}, c.symbol ?? c.asset ?? "–"),
        el("td", { class: c.side ?? "" }, c.side ?? ""), el("td", {}, c.type ?? ""), el("td", {}, c.price ?? ""), el("td", {}, c.qty ?? c.amount ?? ""),
        el("td", { class: "signer", "data-key": auth ? auth.publicKey : null, title: auth ? `key ${auth.publicKey}\nsigned: ${auth.payload}` : "" }, auth ? short(auth.publicKey, 10) : "–"),
        el("td", { title: auth ? auth.signature : "" }, auth ? short(auth.signature, 16) + "…" : "–"));
      const events = c.events.map((e) => e.event + (e.reason ? `(${e.reason})` : "")).join(", ");
      const detail = el("tr", { class: "command-detail" },
        el("td", {}, ""), el("td", { class: "events", colspan: columns.length - 1 },
          (c.clientOrderId ? `client id ${c.clientOrderId} · ` : "") + (events ? `events: ${events}` : "no events")));
      return [main, detail];
    });
    const trades = b.trades.map((t) => row([String(t.tradeId ?? ""), t.symbol ?? "", t.price ?? "", t.qty ?? "",
      String(t.makerOrderId ?? ""), String(t.takerOrderId ?? ""), t.takerSide ?? ""]));
    $("#block-detail").replaceChildren(
      el("h2", {}, `Block ${h.height}`),
      el("table", { class: "detail-table" }, el("tbody", {},
        kv("hash", h.hash), kv("parent", h.parentHash), kv("leader / term", `${h.leader} / ${h.term}`), kv("time", `${dateTime(h.time)} (${h.time})`),
        kv("commands", h.commandsCount), kv("commands root", h.commandsRoot), kv("results root", h.resultsRoot), kv("state hash", h.stateHash), kv("header version", h.version))),
      el("h3", {}, `Orders and commands (${b.commands.length}), ${b.auths.length} signature(s)`),
      el("table", { class: "data", id: "block-commands" },
        el("thead", {}, el("tr", {}, columns.map((x) => el("th", {}, x)))),
        el("tbody", {}, commands)),
      el("h3", {}, `Trades (${b.trades.length})`),
      el("table", { class: "data", id: "block-trades" },
        el("thead", {}, el("tr", {}, ["trade", "symbol", "price", "qty", "maker order", "taker order", "taker side"].map((x) => el("th", {}, x)))),
        el("tbody", {}, trades)),
    );
  }
}
