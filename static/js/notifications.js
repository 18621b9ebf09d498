// A room's notification settings: the menu in the room header (the level, the @room switch,
// mute for a while or until unmuted) over PUT /rooms/{id}/notifications. The answer, and the
// room.summary every other device of mine gets, carry the room's new settings.

import { api, elements, messageOf, store, toast, ui } from "./context.js";
import { formatTime, h } from "./dom.js";

const DEFAULTS = { level: "all", room_mentions: true, muted_until: null };
const LEVELS = [
  ["all", "All messages"],
  ["mentions", "Mentions only"],
  ["none", "Nothing"],
];
const HOUR_MS = 3600 * 1000;
// "Until I unmute": the last second RFC 3339 can write, far past any real mute.
const FOREVER = "9999-12-31T23:59:59Z";
const MUTES = [
  ["1h", "For 1 hour", HOUR_MS],
  ["8h", "For 8 hours", 8 * HOUR_MS],
  ["forever", "Until I unmute", null],
];

export function settingsOf(room) {
  return { ...DEFAULTS, ...(room?.notifications || {}) };
}

/** Muted: `muted_until` is in the future (a mute ends by itself when it passes). */
export function isMuted(room) {
  const until = settingsOf(room).muted_until;
  return Boolean(until) && Date.parse(until) > Date.now();
}

export function mutedText(room) {
  const until = settingsOf(room).muted_until;
  if (!isMuted(room)) return "";
  if (new Date(until).getUTCFullYear() >= 9999) return "Muted until you unmute";
  return `Muted until ${formatTime(until)}`;
}

async function save(roomId, change) {
  try {
    const settings = await api.put(`/rooms/${encodeURIComponent(roomId)}/notifications`, change);
    store.setNotifications(roomId, settings);
  } catch (error) {
    toast(messageOf(error));
  }
}

export function toggleRoomMenu() {
  ui.roomMenuOpen = !ui.roomMenuOpen;
  ui.roomMenuDrawn = null;
  renderRoomMenu();
  if (ui.roomMenuOpen) elements.roomMenu.querySelector("button[aria-checked=true], button")?.focus();
}

export function closeRoomMenu({ focusButton = false } = {}) {
  if (!ui.roomMenuOpen) return;
  ui.roomMenuOpen = false;
  renderRoomMenu();
  if (focusButton) elements.roomMenuButton.focus();
}

/** The menu button's bell, and the menu itself while open (redrawn only when it changes). */
export function renderRoomMenu() {
  const room = store.rooms.get(ui.roomId);
  const menu = elements.roomMenu;
  const button = elements.roomMenuButton;
  const muted = isMuted(room);
  button.textContent = muted ? "🔕" : "🔔";
  button.title = muted ? mutedText(room) : "Notifications";
  button.setAttribute("aria-expanded", ui.roomMenuOpen && room ? "true" : "false");
  if (!ui.roomMenuOpen || !room) {
    ui.roomMenuOpen = false;
    ui.roomMenuDrawn = null;
    menu.hidden = true;
    menu.replaceChildren();
    return;
  }
  const settings = settingsOf(room);
  const drawn = JSON.stringify([room.id, room.kind, settings, muted]);
  if (ui.roomMenuDrawn === drawn) return;
  ui.roomMenuDrawn = drawn;
  const focused = document.activeElement?.closest?.(".room-menu") ? document.activeElement.dataset.item : null;
  const item = (key, label, checked, onclick, role = "menuitem") =>
    h("button", { class: `menu-item ${key.split(":")[0]}-option`, role, "aria-checked": checked === null ? null : String(checked), dataset: { item: key }, onclick }, label);
  const parts = [h("p", { class: "menu-heading" }, "Notify me about")];
  for (const [level, label] of LEVELS) {
    const option = item(`level:${level}`, label, settings.level === level, () => save(room.id, { level }), "menuitemradio");
    option.dataset.level = level;
    parts.push(option);
  }
  if (room.kind === "group") {
    parts.push(item("room-mentions", "Notify for @room", settings.room_mentions, () => save(room.id, { room_mentions: !settings.room_mentions }), "menuitemcheckbox"));
  }
  parts.push(h("p", { class: "menu-heading" }, "Mute"));
  if (muted) {
    parts.push(h("p", { class: "mute-state muted" }, mutedText(room)));
    parts.push(item("unmute", "Unmute", null, () => save(room.id, { muted_until: null })));
  }
  for (const [key, label, duration] of MUTES) {
    const until = () => (duration ? new Date(Date.now() + duration).toISOString() : FOREVER);
    const option = item(`mute:${key}`, label, null, () => save(room.id, { muted_until: until() }));
    option.dataset.mute = key;
    parts.push(option);
  }
  menu.replaceChildren(...parts);
  menu.hidden = false;
  if (focused) menu.querySelector(`[data-item="${focused}"]`)?.focus();
}

/** Up and down move through the menu; Escape closes it. */
export function onRoomMenuKey(event) {
  const items = [...elements.roomMenu.querySelectorAll("button")];
  const index = items.indexOf(document.activeElement);
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : items.length - 1;
    items[(index + step) % items.length]?.focus();
  } else if (event.key === "Escape") {
    event.preventDefault();
    event.stopPropagation();
    closeRoomMenu({ focusButton: true });
  }
}
