// The people of the browser scenarios (chat.mjs, push.mjs): someone who registers in the
// browser client, the REST calls a page makes with its own session, and someone without a
// browser who calls the API over REST.

const PASSWORD = "correct horse battery";

/** The helpers, bound to the server at baseUrl. */
export function people(baseUrl) {
  /** Register through the client's form and wait until its socket is connected. */
  async function register(page, username, displayName) {
    await page.goto(baseUrl);
    await page.getByRole("button", { name: "New here? Create an account" }).click();
    await page.fill("input[name=username]", username);
    await page.fill("input[name=password]", PASSWORD);
    await page.fill("input[name=display_name]", displayName);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.waitForSelector(".status-dot[data-status=online]");
  }

  /** A REST call with the page's own session (its token refreshed when needed). */
  async function pageApi(page, method, path, body) {
    for (let attempt = 0; ; attempt += 1) {
      const answer = await page.evaluate(
        async ([method, path, body]) => {
          const token = JSON.parse(localStorage.getItem("cronchat.session")).access_token;
          const headers = { Authorization: `Bearer ${token}` };
          if (body !== undefined) headers["Content-Type"] = "application/json";
          const response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
          const text = await response.text();
          return { status: response.status, data: text ? JSON.parse(text) : null };
        },
        [method, path, body],
      );
      if (answer.status !== 401 || attempt === 2) return answer;
      await page.waitForTimeout(200); // the page refreshes its token
    }
  }

  /** A user without a browser: registered, and calling the API over REST (refreshing its token). */
  async function restUser(username, displayName) {
    const call = async (method, path, body, token) => {
      const headers = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(`${baseUrl}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await response.text();
      return { status: response.status, data: text ? JSON.parse(text) : null };
    };
    const registered = await call("POST", "/auth/register", { username, password: PASSWORD, display_name: displayName });
    if (registered.status !== 201) throw new Error(`registering ${username} answered ${registered.status}`);
    let session = registered.data;
    const request = async (method, path, body) => {
      let answer = await call(method, path, body, session.access_token);
      if (answer.status === 401) {
        const refreshed = await call("POST", "/auth/refresh", { refresh_token: session.refresh_token });
        if (refreshed.status !== 200) throw new Error(`refreshing ${username} answered ${refreshed.status}`);
        session = refreshed.data;
        answer = await call(method, path, body, session.access_token);
      }
      return answer;
    };
    return {
      id: session.user.id,
      name: displayName,
      username,
      get: (path) => request("GET", path),
      post: (path, body) => request("POST", path, body),
    };
  }

  return { register, pageApi, restUser };
}
