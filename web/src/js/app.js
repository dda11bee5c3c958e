// The dashboard: four views over one connection to the cluster.
import { Conn } from "./conn.js";
import { $, toast } from "./util.js";
import { MarketView } from "./market.js";
import { TradingView } from "./trading.js";
import { ClusterView } from "./cluster.js";
import { ExplorerView } from "./explorer.js";

const conn = new Conn();
const shared = { symbol: null, markets: [] }; // what the views agree on
const views = {};
window.dex = { conn, shared, views }; // for the browser tests and the curious

function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const v of document.querySelectorAll(".view")) v.classList.toggle("active", v.id === `view-${name}`);
  for (const [key, view] of Object.entries(views)) view.visible?.(key === name);
  history.replaceState(null, "", `#${name}`);
}

function renderStatus() {
  const pill = $("#conn-status");
  pill.dataset.state = conn.wsState;
  pill.dataset.node = conn.nodeId ?? "";
  pill.textContent = `${conn.nodeId ?? "?"} · ${conn.wsState}`;
  pill.title = `REST and streams from ${conn.base}`;
  for (const s of document.querySelectorAll(".via-node")) s.textContent = conn.nodeId ?? "?";
}

async function main() {
  conn.onState(renderStatus);
  const info = await conn.get("/api/v1/exchangeInfo");
  shared.markets = info.symbols;
  const select = $("#symbol");
  for (const m of info.symbols) select.append(new Option(m.symbol, m.symbol));
  shared.symbol = info.symbols[0].symbol;
  await conn.start();
  renderStatus();

  views.market = new MarketView(conn, shared);
  views.trading = new TradingView(conn, shared, views.market);
  views.cluster = new ClusterView(conn);
  views.explorer = new ExplorerView(conn);
  await Promise.all(Object.values(views).map((v) => v.start()));

  select.addEventListener("change", () => {
    shared.symbol = select.value;
    for (const v of Object.values(views)) v.symbolChanged?.(shared.symbol);
  });
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  const wanted = location.hash.slice(1);
  showTab(views[wanted] ? wanted : "market");
  document.body.dataset.ready = "1";
}

main().catch((e) => {
  console.error("dex: the dashboard could not start:", e);
  toast(`could not start: ${e.message}`);
});
