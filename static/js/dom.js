// Building DOM safely: every piece of user data goes through textContent or a checked
// attribute, never through innerHTML.

/** h("div", {class: "x", onclick: fn}, child, "text") -> an element. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "text") {
      element.textContent = value;
    } else if (name === "href" || name === "src") {
      element.setAttribute(name, safeUrl(value, name === "src"));
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A URL allowed in href/src: same-origin paths, http(s), and blob: for local previews. */
export function safeUrl(value, allowBlob = false) {
  try {
    const url = new URL(String(value), location.href);
    if (url.protocol === "http:" || url.protocol === "https:") return url.href;
    if (allowBlob && url.protocol === "blob:") return url.href;
  } catch {
    /* not a URL */
  }
  return "about:blank";
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Text with its http(s) links made clickable; everything else stays plain text. */
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let link = match[0].replace(/[.,;:!?)\]]+$/, "");
    if (match.index > last) fragment.append(text.slice(last, match.index));
    fragment.append(
      h("a", { href: link, target: "_blank", rel: "noopener noreferrer nofollow" }, link),
    );
    last = match.index + link.length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

/** Where `token` stands in `text` as a whole word at its end ("@Ann" is not in "@Anna"). */
export function tokenPositions(text, token) {
  const positions = [];
  if (!token) return positions;
  for (let at = text.indexOf(token); at !== -1; at = text.indexOf(token, at + 1)) {
    const next = text[at + token.length];
    if (next === undefined || !/[\p{L}\p{N}_]/u.test(next)) positions.push(at);
  }
  return positions;
}

/**
 * Text with some tokens marked (each `{text, className}`, e.g. the `@Name` of a mention) as
 * spans of that class, the rest linkified. The longest token wins where two start together.
 */
export function markTokens(text, tokens) {
  const found = [];
  for (const token of tokens) {
    for (const at of tokenPositions(text, token.text)) found.push({ at, token });
  }
  found.sort((a, b) => a.at - b.at || b.token.text.length - a.token.text.length);
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const { at, token } of found) {
    if (at < last) continue; // inside a longer token
    if (at > last) fragment.append(linkify(text.slice(last, at)));
    fragment.append(h("span", { class: token.className }, token.text));
    last = at + token.text.length;
  }
  if (last < text.length) fragment.append(linkify(text.slice(last)));
  return fragment;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).slice(0, 2);
  return parts.map((part) => part[0] || "").join("").toUpperCase() || "?";
}

/** A round avatar: the image when there is one, else the initials on a colour. */
export function avatar(user, size = "") {
  const name = user?.display_name || user?.username || "?";
  const classes = `avatar ${size}`.trim();
  if (user?.avatar_url) return h("img", { class: classes, src: user.avatar_url, alt: "" });
  let hue = 0;
  for (const char of user?.id || name) hue = (hue * 31 + char.charCodeAt(0)) % 360;
  const element = h("span", { class: `${classes} initials`, "aria-hidden": "true" }, initials(name));
  element.dataset.hue = String(hue % 12);
  return element;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}
