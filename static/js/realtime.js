// The one WebSocket: auth, acks by frame id, token refresh on the open socket,
// reconnect with backoff and jitter, and an application ping to notice dead links.

const PING_IDLE_MS = 30000;
const PONG_TIMEOUT_MS = 10000;
const ACK_TIMEOUT_MS = 15000;
const REFRESH_MARGIN_MS = 60000;

export class Realtime {
  /**
   * handlers: onReady(ready), onFrame(frame), onStatus(status) where status is
   * "connecting" | "online" | "offline".
   */
  constructor(api, handlers) {
    this.api = api;
    this.handlers = handlers;
    this.socket = null;
    this.ready = false;
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = false;
    this.timers = {};
    this.lastFrameAt = Date.now();
    window.addEventListener("offline", () => this.drop("browser offline"));
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.stopped = false;
    this.connect();
    this.timers.ping = setInterval(() => this.checkAlive(), 5000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.refresh);
    clearTimeout(this.timers.reconnect);
    if (this.socket) this.socket.close(1000, "logout");
    this.socket = null;
  }

  get isReady() {
    return this.ready && this.socket?.readyState === WebSocket.OPEN;
  }

  async connect() {
    if (this.stopped) return;
    clearTimeout(this.timers.reconnect);
    const generation = (this.generation = (this.generation || 0) + 1);
    this.handlers.onStatus("connecting");
    try {
      if (this.api.expiresInMs < 5000) await this.api.refresh();
    } catch (error) {
      if (error.status === 401) return; // logged out: the app shows the login screen
      if (generation === this.generation) this.scheduleReconnect();
      return;
    }
    if (generation !== this.generation || this.stopped) return; // a newer attempt took over
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/v1/ws`);
    this.socket = socket;
    this.ready = false;
    socket.onopen = () => {
      this.lastFrameAt = Date.now();
      this.request("auth", { token: this.api.accessToken }).catch(() => {});
    };
    socket.onmessage = (message) => {
      if (socket !== this.socket) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.receive(frame);
    };
    socket.onclose = (close) => {
      if (socket !== this.socket) return;
      this.closed(close.code, close.reason);
    };
  }

  receive(frame) {
    if (frame.type === "ready") {
      this.ready = true;
      this.attempt = 0;
      this.settle(frame.id, frame);
      this.handlers.onStatus("online");
      this.scheduleRefresh();
      this.handlers.onReady(frame);
      return;
    }
    if (frame.type === "ack" || frame.type === "pong") {
      this.settle(frame.id, frame.result ?? {});
      return;
    }
    if (frame.type === "error" && frame.id !== null && this.pending.has(frame.id)) {
      this.settle(frame.id, null, frame);
      return;
    }
    this.handlers.onFrame(frame);
  }

  settle(id, result, error) {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(Object.assign(new Error(error.message), error));
    else entry.resolve(result);
  }

  /** Send a frame and wait for its ack (or error frame). */
  request(type, fields = {}) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || (type !== "auth" && !this.ready)) {
      return Promise.reject(Object.assign(new Error("not connected"), { code: "offline" }));
    }
    const id = `${type}-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error("no answer from the server"), { code: "timeout" }));
      }, ACK_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      socket.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  /** Refresh the access token before it expires and re-auth on the open socket. */
  scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    const remaining = this.api.expiresInMs;
    const delay = Math.max(1000, remaining - Math.min(REFRESH_MARGIN_MS, remaining * 0.25));
    this.timers.refresh = setTimeout(async () => {
      try {
        await this.api.refresh();
        if (this.isReady) await this.request("auth", { token: this.api.accessToken });
        this.scheduleRefresh();
      } catch (error) {
        if (error.status !== 401) this.timers.refresh = setTimeout(() => this.scheduleRefresh(), 5000);
      }
    }, delay);
  }

  checkAlive() {
    if (!this.isReady || this.pinging) return;
    if (Date.now() - this.lastFrameAt < PING_IDLE_MS) return;
    this.pinging = true;
    const timer = setTimeout(() => this.drop("ping timed out"), PONG_TIMEOUT_MS);
    this.request("ping")
      .catch(() => {})
      .finally(() => {
        clearTimeout(timer);
        this.pinging = false;
      });
  }

  /** Give up on the current socket (no network, dead link) and reconnect. */
  drop(reason) {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    try {
      socket.close(4000, reason);
    } catch {
      /* already closed */
    }
    this.closed(1006, reason);
  }

  /** The network is back: try at once instead of waiting for the backoff. */
  reconnectNow() {
    if (this.stopped || this.socket?.readyState === WebSocket.OPEN) return;
    const stale = this.socket;
    this.socket = null;
    if (stale) stale.close();
    this.attempt = 0;
    this.connect();
  }

  closed(code, reason) {
    this.socket = null;
    this.ready = false;
    clearTimeout(this.timers.refresh);
    for (const id of [...this.pending.keys()]) this.settle(id, null, { code: "offline", message: "disconnected" });
    this.handlers.onStatus("offline", { code, reason });
    if (this.stopped) return;
    if (code === 4003 && reason === "session revoked") {
      this.api.clearSession();
      this.api.onLoggedOut();
      return;
    }
    if (code === 4001 || code === 4003) {
      // The token was refused or expired: refresh before the next attempt.
      this.api.refresh().then(() => this.scheduleReconnect(), () => {});
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.stopped) return;
    clearTimeout(this.timers.reconnect);
    const base = Math.min(30000, 500 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }
}
