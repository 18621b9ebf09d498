// Mentions. In the composer, typing @ offers the room's members (and @room in a group),
// filtered by what follows the @; a pick inserts "@Name " and is remembered by user id, and
// a send or an edit carries the picks still in its text. In messages, the @Name of each
// mentioned user and @room are marked, and a message that mentions me stands out.

import { elements, store, ui } from "./context.js";
import { avatar, h, tokenPositions } from "./dom.js";

const ROOM_TOKEN = "@room";
const MAX_OPTIONS = 8;
const NO_MENTIONS = { user_ids: [], room: false };

/** The picks of this room's draft: {roomId, users: Map(id -> "@Name" or null), room}. */
function picks(roomId) {
  if (ui.mentionPicks?.roomId !== roomId) ui.mentionPicks = { roomId, users: new Map(), room: false };
  return ui.mentionPicks;
}

export function resetMentions() {
  ui.mentionPicks = null;
  closePicker();
}

/**
 * Editing a message: its mentions are the picks, kept while their @Name stays in the text. A
 * user whose name is not in it (renamed since) stays mentioned: the edit cannot tell.
 */
export function pickMentionsOf(message) {
  const draft = picks(message.room_id);
  draft.users.clear();
  for (const userId of message.mentions?.user_ids || []) {
    const token = `@${displayName(store.user(userId))}`;
    draft.users.set(userId, hasToken(message.text || "", token) ? token : null);
  }
  draft.room = Boolean(message.mentions?.room);
}

/** The `mentions` of a send or an edit: the picks whose @Name is still in the text. */
export function collectMentions(roomId, text) {
  const draft = ui.mentionPicks;
  if (!draft || draft.roomId !== roomId) return { ...NO_MENTIONS };
  const user_ids = [...draft.users].filter(([, token]) => token === null || hasToken(text, token)).map(([userId]) => userId);
  const room = draft.room && store.rooms.get(roomId)?.kind === "group" && hasToken(text, ROOM_TOKEN);
  return { user_ids, room };
}

function hasToken(text, token) {
  return tokenPositions(text, token).length > 0;
}

function displayName(user) {
  return user?.display_name || user?.username || "…";
}

// ---------------------------------------------------------------- the picker

/** On every input: an "@query" just before the caret opens (or refilters) the picker. */
export function updatePicker() {
  const input = elements.input;
  const roomId = ui.roomId;
  const before = input.value.slice(0, input.selectionStart);
  const match = /(?:^|\s)@([^\s@]{0,32})$/u.exec(before);
  if (!roomId || !match || input.selectionStart !== input.selectionEnd) {
    closePicker();
    return;
  }
  const query = match[1];
  const start = before.length - query.length - 1;
  const members = store.members.get(roomId);
  if (!members) {
    // First @ in this room: fetch its members once, then offer them if still wanted.
    store
      .roomMembers(roomId)
      .then(() => {
        if (ui.roomId === roomId && document.activeElement === input) updatePicker();
      })
      .catch(() => {});
    closePicker();
    return;
  }
  const options = optionsFor(store.rooms.get(roomId), members, query.toLowerCase());
  if (!options.length) {
    closePicker();
    return;
  }
  const previous = ui.picker?.options[ui.picker.active]?.key;
  const kept = options.findIndex((option) => option.key === previous);
  ui.picker = { roomId, start, end: before.length, options, active: Math.max(0, kept) };
  drawPicker();
}

/** The members (not me) whose name or username has a word starting with the query, best
 * first; @room in a group, first once the query spells its start, else last. */
function optionsFor(room, members, query) {
  const scored = [];
  for (const member of members) {
    const user = store.users.get(member.user.id) || member.user;
    if (user.id === store.me.id) continue;
    const name = displayName(user).toLowerCase();
    const username = (user.username || "").toLowerCase();
    let score;
    if (name.startsWith(query) || username.startsWith(query)) score = 0;
    else if (name.split(/\s+/).some((word) => word.startsWith(query))) score = 1;
    else continue;
    scored.push({ score, option: { key: user.id, user, label: displayName(user), detail: `@${user.username}`, token: `@${displayName(user)}` } });
  }
  scored.sort((a, b) => a.score - b.score || a.option.label.localeCompare(b.option.label));
  const options = scored.map((entry) => entry.option);
  if (room?.kind !== "group" || !"room".startsWith(query)) return options.slice(0, MAX_OPTIONS);
  const everyone = { key: "room", user: null, label: ROOM_TOKEN, detail: "everyone in the room", token: ROOM_TOKEN };
  const people = options.slice(0, MAX_OPTIONS - 1);
  return query ? [everyone, ...people] : [...people, everyone];
}

function drawPicker() {
  const picker = ui.picker;
  const list = elements.mentionPicker;
  list.replaceChildren(
    ...picker.options.map((option, index) =>
      h(
        "li",
        {
          class: `mention-option${index === picker.active ? " active" : ""}`,
          id: `mention-option-${index}`,
          role: "option",
          "aria-selected": index === picker.active ? "true" : "false",
          dataset: option.user ? { userId: option.user.id } : { room: "true" },
          // mousedown, not click: the composer keeps the focus (and its caret).
          onmousedown: (event) => {
            event.preventDefault();
            pick(index);
          },
        },
        option.user ? avatar(option.user, "small") : h("span", { class: "avatar small room-token", "aria-hidden": "true" }, "@"),
        h("span", { class: "mention-label" }, option.label),
        h("span", { class: "muted" }, option.detail),
      ),
    ),
  );
  list.hidden = false;
  elements.input.setAttribute("aria-expanded", "true");
  elements.input.setAttribute("aria-activedescendant", `mention-option-${picker.active}`);
}

export function closePicker() {
  ui.picker = null;
  if (!elements.mentionPicker) return;
  elements.mentionPicker.hidden = true;
  elements.mentionPicker.replaceChildren();
  elements.input.setAttribute("aria-expanded", "false");
  elements.input.removeAttribute("aria-activedescendant");
}

/** Keys while the picker is open; true when the key was the picker's. */
export function onPickerKey(event) {
  const picker = ui.picker;
  if (!picker || event.isComposing) return false;
  const count = picker.options.length;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    picker.active = (picker.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
    drawPicker();
  } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
    pick(picker.active);
  } else if (event.key === "Escape") {
    closePicker();
  } else {
    if (["ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"].includes(event.key)) closePicker();
    return false;
  }
  event.preventDefault();
  return true;
}

/** Put "@Name " in place of the "@query" and remember whom it names. */
function pick(index) {
  const picker = ui.picker;
  const option = picker?.options[index];
  if (!option || picker.roomId !== ui.roomId) return;
  const input = elements.input;
  const inserted = `${option.token} `;
  input.value = input.value.slice(0, picker.start) + inserted + input.value.slice(picker.end);
  const caret = picker.start + inserted.length;
  input.setSelectionRange(caret, caret);
  const draft = picks(picker.roomId);
  if (option.user) draft.users.set(option.user.id, option.token);
  else draft.room = true;
  closePicker();
  input.focus();
}

// ---------------------------------------------------------------- in messages

/** Whether a message (of someone else) names me or the room. */
export function mentionsMe(message) {
  if (!message.mentions || message.deleted || message.sender_id === store.me.id) return false;
  return message.mentions.user_ids.includes(store.me.id) || message.mentions.room;
}

/** The tokens to mark in a message's text: each mentioned user's @Name (and @username), @room. */
export function mentionTokens(message) {
  const mentions = message.mentions || NO_MENTIONS;
  const tokens = [];
  for (const userId of mentions.user_ids) {
    const user = store.user(userId); // an unknown user is fetched, and marked once known
    if (!store.users.has(userId)) continue;
    const className = userId === store.me.id ? "mention mention-me" : "mention";
    tokens.push({ text: `@${displayName(user)}`, className });
    if (user.username) tokens.push({ text: `@${user.username}`, className });
  }
  if (mentions.room) tokens.push({ text: ROOM_TOKEN, className: "mention mention-room" });
  return tokens;
}
