// The page's one connection to the cluster: REST and the WebSocket streams
// (docs/STREAMS.md), both against the "current" node, which starts as the
// node that served the page. When that node stops answering (the socket
// closes, a fetch fails), the page moves to the next node that answers
// /healthz, reopens the socket there and subscribes again to every stream
// it had; the views see a fresh depth snapshot and carry on.

const REQUEST_TIMEOUT_MS = 12_000; // above the node's own forward timeout (7 s)
const PROBE_TIMEOUT_MS = 1_500;
const RETRIES_MAX = 4; // attempts per request, over different nodes when they fail
const RETRY_DELAY_MS = 300;
const RECONNECT_DELAY_MS_MIN = 250;
const RECONNECT_DELAY_MS_MAX = 3_000;
const STREAMS_MAX = 64; // the server's limit per connection
const USER_STREAM = "user"; // subscribed by LOGIN

export class ApiError extends Error {
  constructor(status, code, msg) {
    super(`${msg} (${code})`);
    this.status = status;
    this.code = code;
    this.msg = msg;
  }
}

export class Conn {
  constructor() {
    this.base = location.origin;
    this.nodes = [{ id: null, url: location.origin }]; // filled from /api/v1/cluster/status
    this.nodeId = null;
    this.ws = null;
    this.wsState = "connecting"; // connecting | live | down
    this.streams = new Map(); // stream name -> Set of handlers
    this.pending = new Map(); // request id -> {resolve, reject}
    this.toSubscribe = new Set();
    this.toUnsubscribe = new Set();
    this.flushQueued = false;
    this.nextId = 1;
    this.login = null; // async (challenge) => LOGIN params, when an account wants the user stream
    this.reconnectDelayMs = RECONNECT_DELAY_MS_MIN;
    this.stateListeners = [];
    this.moves = 0; // how many times the page moved to another node
  }

  onState(fn) { this.stateListeners.push(fn); }
  _emitState() { for (const fn of this.stateListeners) fn(this); }

  async start() {
    await this.refreshNodes();
    this._open();
  }

  async refreshNodes() {
    const st = await this.get("/api/v1/cluster/status");
    this.nodeId = st.node;
    this.nodes = st.nodes.map((n) => ({ id: n.id, url: n.publicUrl ?? n.apiUrl }));
    return st;
  }

  // ------------------------------------------------------------------ REST

  get(path, query) { return this.request("GET", path, { query }); }

  // One request; on a network failure or a 503 it tries again (on the next
  // node that answers, when this one is dead). `sign` re-signs each attempt:
  // a retried order keeps its client order id, so it cannot be placed twice.
  async request(method, path, { query = null, body = null, sign = null, headers = {} } = {}) {
    const qs = query ? new URLSearchParams(query).toString() : "";
    const raw = body === null ? "" : JSON.stringify(body);
    let lastError = null;
    for (let attempt = 0; attempt < RETRIES_MAX; attempt++) {
      const base = this.base;
      const h = { ...headers };
      if (raw) h["Content-Type"] = "application/json";
      if (sign) Object.assign(h, await sign(method, path, qs, raw));
      let response;
      try {
        response = await fetch(base + path + (qs ? "?" + qs : ""), {
          method, headers: h, body: raw || undefined, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
      } catch (e) {
        lastError = e;
        await this._failover(base);
        continue;
      }
      const payload = await response.json().catch(() => null);
      if (response.ok) return payload;
      const code = payload?.code ?? -1000;
      const msg = payload?.msg ?? `HTTP ${response.status}`;
      lastError = new ApiError(response.status, code, msg);
      if (response.status !== 503) throw lastError;
      await delay(RETRY_DELAY_MS * (attempt + 1));
    }
    throw lastError;
  }

  // The node at `failedBase` did not answer: move to the next one that does.
  async _failover(failedBase) {
    if (this.base !== failedBase) return; // someone already moved
    const next = await this._nextAlive(failedBase);
    if (next && next.url !== this.base) this._moveTo(next);
  }

  async _nextAlive(failedBase) {
    const i = this.nodes.findIndex((n) => n.url === failedBase);
    const order = this.nodes.slice(i + 1).concat(this.nodes.slice(0, Math.max(i, 0) + 1));
    for (const n of order) {
      try {
        const r = await fetch(n.url + "/healthz", { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
        if (r.ok) return { id: (await r.json()).node, url: n.url };
      } catch (e) { /* dead too: try the next */ }
    }
    return null;
  }

  _moveTo(node) {
    this.base = node.url;
    this.nodeId = node.id;
    this.moves += 1;
    console.info(`dex: moved to node ${node.id} at ${node.url}`);
    if (this.ws) this.ws.close(); // reopens against the new node
    this._emitState();
  }

  // ------------------------------------------------------------- streams

  subscribe(stream, handler) {
    let handlers = this.streams.get(stream);
    if (!handlers) {
      if (this.streams.size >= STREAMS_MAX) throw new Error(`at most ${STREAMS_MAX} streams`);
      handlers = new Set();
      this.streams.set(stream, handlers);
      // The user stream comes with LOGIN (see relogin), never by SUBSCRIBE.
      if (stream !== USER_STREAM) this._queue(this.toSubscribe, stream);
    }
    handlers.add(handler);
    return () => this.unsubscribe(stream, handler);
  }

  unsubscribe(stream, handler) {
    const handlers = this.streams.get(stream);
    if (!handlers) return;
    handlers.delete(handler);
    if (handlers.size === 0) {
      this.streams.delete(stream);
      if (stream !== USER_STREAM) this._queue(this.toUnsubscribe, stream);
    }
  }

  // Changes made in one turn of the event loop go out as one frame each way:
  // the server takes at most 10 inbound messages a second.
  _queue(set, stream) {
    set.add(stream);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setTimeout(() => {
      this.flushQueued = false;
      const gone = [...this.toUnsubscribe].filter((name) => !this.streams.has(name));
      const added = [...this.toSubscribe].filter((name) => this.streams.has(name));
      this.toUnsubscribe.clear();
      this.toSubscribe.clear();
      if (gone.length) this._send("UNSUBSCRIBE", gone).catch(() => {});
      if (added.length) this._send("SUBSCRIBE", added).catch((e) => console.warn("dex: subscribe", added, e.message));
    }, 0);
  }

  // Resubscribe one stream (e.g. to get a fresh depth snapshot after a gap).
  resubscribe(stream) {
    return this._send("UNSUBSCRIBE", [stream]).then(() => this._send("SUBSCRIBE", [stream])).catch(() => {});
  }

  async relogin() {
    if (this.wsState === "live" && this.login) await this._login();
  }

  // LOGIN signs the connection's challenge (docs/STREAMS.md): ask for it first.
  async _login() {
    const answer = await this._send("CHALLENGE");
    if (!answer) return null; // closed meanwhile: logs in again on reopen
    return this._send("LOGIN", await this.login(answer.challenge));
  }

  _send(method, params) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return Promise.resolve(null); // sent on (re)open
    const id = this.nextId++;
    const frame = params === undefined ? { method, id } : { method, params, id };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify(frame));
    });
  }

  _open() {
    const url = this.base.replace(/^http/, "ws") + "/ws";
    const ws = new WebSocket(url);
    this.ws = ws;
    this.wsState = "connecting";
    this._emitState();
    ws.onopen = async () => {
      this.wsState = "live";
      this.reconnectDelayMs = RECONNECT_DELAY_MS_MIN;
      this._emitState();
      const names = [...this.streams.keys()].filter((name) => name !== USER_STREAM);
      if (names.length) this._send("SUBSCRIBE", names).catch((e) => console.warn("subscribe", e.message));
      if (this.login) this._login().catch((e) => console.warn("login", e.message));
    };
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.stream !== undefined) {
        for (const fn of this.streams.get(msg.stream) || []) fn(msg.data);
        return;
      }
      const waiter = this.pending.get(msg.id);
      if (!waiter) {
        if (msg.error) console.warn("dex stream error", msg.error.code, msg.error.msg);
        return;
      }
      this.pending.delete(msg.id);
      if (msg.error) waiter.reject(new ApiError(400, msg.error.code, msg.error.msg));
      else waiter.resolve(msg.result);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      for (const w of this.pending.values()) w.reject(new Error("stream closed"));
      this.pending.clear();
      this.wsState = "down";
      this._emitState();
      this._reconnect();
    };
  }

  async _reconnect() {
    const failed = this.base;
    await delay(this.reconnectDelayMs);
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, RECONNECT_DELAY_MS_MAX);
    let healthy = false;
    try {
      healthy = (await fetch(failed + "/healthz", { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })).ok;
    } catch (e) { /* dead */ }
    if (!healthy) {
      const next = await this._nextAlive(failed);
      if (next && next.url !== this.base) {
        this.base = next.url;
        this.nodeId = next.id;
        this.moves += 1;
        console.info(`dex: moved to node ${next.id} at ${next.url}`);
      }
    }
    this._open();
  }
}

export function delay(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
