// The login and registration screen.

import { api, messageOf, root } from "./context.js";
import { clear, h } from "./dom.js";

/** The login and registration form; onLoggedIn() starts the chat. */
export function showAuth(notice, onLoggedIn) {
  root.className = "app auth-screen";
  let mode = "login";
  const error = h("p", { class: "form-error", role: "alert" }, notice || "");
  const username = h("input", { name: "username", autocomplete: "username", required: true, minlength: 3, maxlength: 32, placeholder: "e.g. alice" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, minlength: 8, placeholder: "at least 8 characters" });
  const displayName = h("input", { name: "display_name", autocomplete: "name", maxlength: 64, placeholder: "optional" });
  const nameRow = h("label", { class: "field register-only" }, "Display name", displayName);
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const toggle = h("button", { type: "button", class: "link" }, "New here? Create an account");
  const form = h(
    "form",
    { class: "auth-card", novalidate: true },
    h("h1", {}, "CronChat"),
    h("p", { class: "muted" }, "Chat in real time."),
    h("label", { class: "field" }, "Username", username),
    h("label", { class: "field" }, "Password", password),
    nameRow,
    error,
    submit,
    toggle,
  );
  const setMode = (next) => {
    mode = next;
    form.classList.toggle("registering", mode === "register");
    submit.textContent = mode === "register" ? "Create account" : "Log in";
    toggle.textContent = mode === "register" ? "Have an account? Log in" : "New here? Create an account";
    password.autocomplete = mode === "register" ? "new-password" : "current-password";
  };
  toggle.addEventListener("click", () => setMode(mode === "login" ? "register" : "login"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      if (mode === "register") await api.register(username.value.trim(), password.value, displayName.value.trim() || undefined);
      else await api.login(username.value.trim(), password.value);
      await onLoggedIn();
    } catch (caught) {
      error.textContent = messageOf(caught);
    } finally {
      submit.disabled = false;
    }
  });
  clear(root).append(form);
  username.focus();
}
