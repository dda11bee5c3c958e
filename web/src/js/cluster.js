// Cluster view: every node's role, term, head, state hash, lag,
// reachability and commit latency (its own: block time to applied there), the leader highlighted, hashes compared (a mismatch in
// red); a live feed of committed blocks (the `blocks` stream); on local
// clusters, kill and restart buttons (they need the cluster secret).
import { $, el, row, short, time } from "./util.js";

const FEED_ROWS_MAX = 40;
const SECRET_KEY = "dex.clusterSecret";

export class ClusterView {
  constructor(conn) {
    this.conn = conn;
    this.status = null;
    this.blocks = [];
    this.admin = null; // {secretFile, secretHeader} on local clusters
    this.shown = false;
  }

  async start() {
    this.conn.subscribe("cluster", (st) => this.show(st));
    this.conn.subscribe("blocks", (b) => this.onBlock(b));
    this.seedFeed(); // a quiet cluster sends no block for a while: show the latest ones at once
    try {
      this.admin = await this.conn.get("/api/v1/admin/nodes");
    } catch (e) {
      this.admin = null; // 404: not a local cluster; no controls
    }
    if (this.admin) {
      $("#admin").hidden = false;
      $("#admin-hint").textContent = `the secret is in ${this.admin.secretFile}`;
      $("#admin-secret").value = sessionStorage.getItem(SECRET_KEY) || "";
      $("#admin").addEventListener("submit", (e) => {
        e.preventDefault();
        sessionStorage.setItem(SECRET_KEY, $("#admin-secret").value.trim());
        this.adminMessage("secret kept for this tab", "ok");
      });
    }
    this.poll();
  }

  visible(on) {
    this.shown = on;
    if (on) this.poll();
  }

  // One read of the status when the view starts, is shown or acts: the
  // `cluster` stream pushes it on every change of role, leader or
  // reachability and at least once a second while heads move.
  async poll() {
    try {
      this.show(await this.conn.get("/api/v1/cluster/status"));
    } catch (e) {
      console.warn("dex: cluster status:", e.message);
    }
  }

  show(st) {
    this.status = st;
    const reachable = st.nodes.filter((n) => n.reachable);
    const top = Math.max(0, ...reachable.map((n) => n.headHeight ?? 0));
    // Nodes at the same height must have the same head and state hash.
    const byHeight = new Map();
    for (const n of reachable) {
      if (!byHeight.has(n.headHeight)) byHeight.set(n.headHeight, []);
      byHeight.get(n.headHeight).push(n);
    }
    const bad = new Set();
    let mismatchAt = null;
    for (const [height, nodes] of byHeight) {
      if (new Set(nodes.map((n) => n.stateHash)).size > 1 || new Set(nodes.map((n) => n.headHash)).size > 1) {
        for (const n of nodes) bad.add(n.id);
        mismatchAt = height;
      }
    }
    const agreement = $("#hash-agreement");
    agreement.className = `pill ${mismatchAt === null ? "ok" : "bad"}`;
    // A leader that stopped answering is being replaced: say so, rather than
    // show it as LEADER until the next status names another.
    const lost = st.leader != null && !st.nodes.some((n) => n.id === st.leader && n.reachable);
    const leading = st.leader == null || lost ? "electing" : `leader ${st.leader}`;
    agreement.textContent = mismatchAt === null
      ? `hashes agree · ${leading} · term ${st.term}`
      : `hashes DISAGREE at height ${mismatchAt}`;
    $("#nodes").replaceChildren(...st.nodes.map((n) => {
      const leader = n.id === st.leader && n.reachable;
      const cls = [leader ? "leader" : "", n.reachable ? "" : "unreachable"].join(" ").trim();
      const mismatch = bad.has(n.id) ? "mismatch" : null;
      const role = n.reachable ? (n.role ?? "–") : n.id === st.leader ? "electing" : "–";
      const actions = this.admin ? el("td", { class: "admin-col" },
        el("button", { class: "danger small", "data-kill": n.id, onclick: () => this.act(n.id, "kill") }, "kill"), " ",
        el("button", { class: "ghost small", "data-restart": n.id, onclick: () => this.act(n.id, "restart") }, "restart")) : el("td");
      return row([
        n.id + (leader ? " ★" : ""), role, n.term ?? "–", n.headHeight ?? "–",
        el("td", { class: mismatch }, short(n.headHash, 12)), el("td", { class: mismatch }, short(n.stateHash, 12)),
        n.reachable ? `${top - (n.headHeight ?? 0)} blocks` : "–", n.reachable ? "yes" : "NO",
        el("td", { class: "commit-col" }, n.applyMsP50 == null ? "–" : `${n.applyMsP50} ms`), n.apiUrl ?? "–", actions,
      ].map((c) => (c instanceof Node ? c : String(c))), { class: cls || null, "data-node": n.id, "data-role": role, "data-height": n.headHeight ?? "" });
    }));
  }

  async seedFeed() {
    let recent;
    try {
      recent = await this.conn.get("/api/v1/blocks", { limit: FEED_ROWS_MAX });
    } catch (e) {
      return; // the live feed still fills as blocks come
    }
    const known = new Set(this.blocks.map((x) => x.height));
    const older = recent.blocks
      .filter((h) => !known.has(h.height))
      .map((h) => ({ height: h.height, hash: h.hash, leader: h.leader, term: h.term, commands: h.commandsCount, trades: null, commitMs: null, time: h.time }));
    this.blocks = [...this.blocks, ...older].sort((a, b) => b.height - a.height).slice(0, FEED_ROWS_MAX);
    this.renderFeed();
  }

  onBlock(b) {
    if (this.blocks.some((x) => x.height === b.height)) return;
    this.blocks.unshift(b);
    this.blocks.length = Math.min(this.blocks.length, FEED_ROWS_MAX);
    this.renderFeed();
  }

  renderFeed() {
    $("#block-feed").replaceChildren(...this.blocks.map((x) => row([
      String(x.height), short(x.hash, 12), x.leader ?? "–", String(x.term), String(x.commands), x.trades == null ? "–" : String(x.trades),
      x.commitMs == null ? "–" : x.commitMs.toFixed(1), time(x.time),
    ], { "data-height": x.height })));
  }

  adminMessage(text, kind) {
    const m = $("#admin-msg");
    m.textContent = text;
    m.className = `msg ${kind}`;
  }

  async act(nodeId, action) {
    const secret = sessionStorage.getItem(SECRET_KEY) || $("#admin-secret").value.trim();
    if (!secret) {
      this.adminMessage(`enter the cluster secret first (${this.admin.secretFile})`, "error");
      $("#admin-secret").focus();
      return;
    }
    try {
      await this.conn.request("POST", `/api/v1/admin/nodes/${encodeURIComponent(nodeId)}/${action}`, {
        headers: { [this.admin.secretHeader]: secret },
      });
      this.adminMessage(`${action} ${nodeId}: sent`, "ok");
    } catch (e) {
      this.adminMessage(`${action} ${nodeId}: ${e.message}`, "error");
      if (e.status === 403) sessionStorage.removeItem(SECRET_KEY);
    }
    this.poll();
  }
}
