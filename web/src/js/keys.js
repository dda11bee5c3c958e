// The demo account: an Ed25519 key pair made by WebCrypto and kept in this
// browser's localStorage (the private key as PKCS#8, the public key raw).
// Requests are signed as dex/auth.py signed_payload does:
// timestamp + METHOD + path + ("?" + query if query) + body.

const STORAGE_KEY = "dex.account.v1";
const ALGORITHM = { name: "Ed25519" };

export class Account {
  constructor(privateKey, publicRaw) {
    this.privateKey = privateKey; // a non-extractable CryptoKey once loaded
    this.publicHex = toHex(publicRaw);
  }

  static async loadOrCreate() {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored) {
      try {
        const { pkcs8, pub } = JSON.parse(stored);
        const key = await crypto.subtle.importKey("pkcs8", fromBase64(pkcs8), ALGORITHM, false, ["sign"]);
        return new Account(key, fromBase64(pub));
      } catch (e) {
        console.warn("dex: the stored key is unreadable; making a new one", e.message);
      }
    }
    return Account.create();
  }

  static async create() {
    const pair = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ pkcs8: toBase64(pkcs8), pub: toBase64(pub) }));
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, ALGORITHM, false, ["sign"]);
    return new Account(key, pub);
  }

  async signature(payload) {
    const sig = await crypto.subtle.sign(ALGORITHM, this.privateKey, new TextEncoder().encode(payload));
    return toBase64(new Uint8Array(sig));
  }

  // Headers for one REST request (Conn.request calls this on every attempt).
  sign = async (method, path, query, body) => {
    const timestamp = String(Date.now());
    const payload = timestamp + method.toUpperCase() + path + (query ? "?" + query : "") + body;
    return { "X-API-KEY": this.publicHex, "X-TIMESTAMP": timestamp, "X-SIGNATURE": await this.signature(payload) };
  };

  // LOGIN params for the user stream: signed like GET /ws?challenge=<the
  // connection's challenge> with no body, so they are good on that connection only.
  loginParams = async (challenge) => {
    const timestamp = Date.now();
    return { apiKey: this.publicHex, timestamp, signature: await this.signature(`${timestamp}GET/ws?challenge=${challenge}`) };
  };
}

function toHex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }
function toBase64(bytes) { return btoa(String.fromCharCode(...bytes)); }
function fromBase64(text) { return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); }
