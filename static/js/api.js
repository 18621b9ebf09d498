// REST client of /api/v1: bearer tokens, one refresh at a time, and the error envelope
// turned into an ApiError with a readable message.

const BASE = "/api/v1";
const STORAGE_KEY = "cronchat.session";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }

  /** A sentence for the user: the server's message, naming the field when there is one. */
  get userMessage() {
    if (this.code === "network") return "Cannot reach the server. Check your connection.";
    const field = this.details.field ? ` (${this.details.field})` : "";
    return `${this.message}${field}`;
  }
}

export class Api {
  constructor() {
    this.session = loadSession();
    this.refreshing = null;
    this.onSession = () => {};
    this.onLoggedOut = () => {};
  }

  get loggedIn() {
    return Boolean(this.session?.refresh_token);
  }

  get accessToken() {
    return this.session?.access_token;
  }

  /** Milliseconds until the access token expires. */
  get expiresInMs() {
    return this.session ? this.session.expires_at - Date.now() : 0;
  }

  setSession(answer) {
    this.session = {
      access_token: answer.access_token,
      refresh_token: answer.refresh_token,
      expires_at: Date.now() + answer.expires_in * 1000,
      user_id: answer.user?.id || this.session?.user_id,
    };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
    this.onSession(this.session);
  }

  clearSession() {
    this.session = null;
    localStorage.removeItem(STORAGE_KEY);
  }

  async register(username, password, display_name) {
    const answer = await this.request("POST", "/auth/register", { username, password, display_name }, { auth: false });
    this.setSession(answer);
    return answer;
  }

  async login(username, password) {
    const answer = await this.request("POST", "/auth/login", { username, password }, { auth: false });
    this.setSession(answer);
    return answer;
  }

  async logout() {
    try {
      await this.request("POST", "/auth/logout");
    } finally {
      this.clearSession();
    }
  }

  /**
   * POST /auth/refresh, once even when several callers ask at the same time. Tabs share the
   * session, and a refresh token works once (presenting a spent one ends the session), so
   * tabs take turns under a Web Lock and adopt a pair another tab has just obtained.
   */
  refresh() {
    if (!this.refreshing) {
      const spent = this.session?.refresh_token;
      const exchange = async () => {
        const stored = loadSession();
        if (stored?.refresh_token && stored.refresh_token !== spent && stored.expires_at - Date.now() > 30000) {
          this.session = stored; // another tab refreshed already
          this.onSession(stored);
          return stored;
        }
        const token = stored?.refresh_token || spent;
        const answer = await this.request("POST", "/auth/refresh", { refresh_token: token }, { auth: false, retry: false });
        this.setSession(answer);
        return answer;
      };
      const locked = navigator.locks ? navigator.locks.request("cronchat.refresh", exchange) : exchange();
      this.refreshing = locked
        .catch((error) => {
          if (error.status === 401) {
            this.clearSession();
            this.onLoggedOut(error);
          }
          throw error;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body ?? {});
  }

  patch(path, body) {
    return this.request("PATCH", path, body);
  }

  put(path, body) {
    return this.request("PUT", path, body);
  }

  delete(path) {
    return this.request("DELETE", path);
  }

  /** Upload an image (raw body) to POST /media or PUT /users/me/avatar. */
  upload(method, path, file) {
    return this.request(method, path, file, { raw: true, contentType: file.type || "application/octet-stream" });
  }

  /** An image by its id with the bearer token (GET /media/{id}), as a local blob: URL. */
  async imageUrl(path) {
    if (this.session && this.expiresInMs < 5000) await this.refresh();
    let response;
    try {
      response = await fetch(BASE + path, { headers: { Authorization: `Bearer ${this.accessToken}` }, cache: "no-store" });
    } catch {
      throw new ApiError(0, "network", "network error", {});
    }
    if (!response.ok) throw new ApiError(response.status, "not_found", "The image is no longer available.", {});
    return URL.createObjectURL(await response.blob());
  }

  async request(method, path, body, options = {}) {
    const { auth = true, retry = true, raw = false, contentType } = options;
    if (auth && this.session && this.expiresInMs < 5000) await this.refresh();
    const headers = {};
    if (auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let payload;
    if (body !== undefined) {
      payload = raw ? body : JSON.stringify(body);
      headers["Content-Type"] = raw ? contentType : "application/json";
    }
    let response;
    try {
      response = await fetch(BASE + path, { method, headers, body: payload, cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, "network", "network error", {});
    }
    if (response.status === 401 && auth && retry && this.session?.refresh_token) {
      await this.refresh();
      return this.request(method, path, body, { ...options, retry: false });
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = data?.error || {};
      throw new ApiError(
        response.status,
        error.code || "internal",
        error.message || `The server answered ${response.status}.`,
        error.details,
      );
    }
    return data;
  }
}

function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
  } catch {
    return null;
  }
}
