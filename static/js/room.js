// The room view: messages with replies, reactions, images, mentions and receipts; history
// on scroll-up; read markers. Messages are drawn once and redrawn only when they change.
// Messages of users I block are collapsed until clicked.

import { cancelContext, attemptSend, deleteMessage, discardPending, startEdit, startReply, toggleReaction } from "./composer.js";
import { act, api, app, elements, messageOf, scheduleRender, store, toast, ui } from "./context.js";
import { showImage } from "./dialogs.js";
import { avatar, formatTime, h, markTokens } from "./dom.js";
import { mentionTokens, mentionsMe } from "./mentions.js";
import { blockUser, showReportForm } from "./moderation.js";
import { closeRoomMenu } from "./notifications.js";

const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮"];

export function roomName(room) {
  if (room.kind === "direct" && room.peer) {
    const peer = store.users.get(room.peer.id) || room.peer;
    return peer.display_name || peer.username;
  }
  return room.name || "Untitled";
}

export async function openRoom(roomId, { keepComposer = false } = {}) {
  if (ui.roomId !== roomId) {
    ui.roomId = roomId;
    ui.messageNodes.clear();
    elements.messages.replaceChildren();
    ui.stickToBottom = true;
    closeRoomMenu();
    if (!keepComposer) cancelContext();
  }
  scheduleRender();
  try {
    await store.loadHistory(roomId);
    if (store.rooms.get(roomId)?.kind === "group" || store.rooms.get(roomId)?.peer) await store.loadMembers(roomId).catch(() => {});
  } catch (error) {
    toast(messageOf(error));
  }
  scheduleRender();
  if (!keepComposer) elements.input.focus();
}

export function closeRoom() {
  ui.roomId = null;
  closeRoomMenu();
  cancelContext();
  scheduleRender();
}

export function renderRoom() {
  const room = store.rooms.get(ui.roomId);
  const timeline = store.timeline(ui.roomId);
  elements.roomTitle.textContent = roomName(room);
  if (room.kind === "direct" && room.peer) {
    const peer = store.users.get(room.peer.id) || room.peer;
    elements.roomSubtitle.textContent = peer.online ? "online" : peer.last_seen_at ? `last seen ${formatTime(peer.last_seen_at)}` : "offline";
    elements.roomAvatar.replaceChildren(avatar(peer));
  } else {
    elements.roomSubtitle.textContent = [`${room.member_count} members`, room.topic].filter(Boolean).join(" · ");
    elements.roomAvatar.replaceChildren(avatar({ id: room.id, display_name: room.name }));
  }
  const list = elements.messages;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const heightBefore = list.scrollHeight;
  const topBefore = list.scrollTop;

  const messages = timeline.messages();
  const seenBy = seenMap(room, messages);
  const wanted = [];
  if (timeline.hasMore) wanted.push(keyed("more", "", () => h("li", { class: "history-note" }, "Scroll up for older messages")));
  else if (timeline.loaded) wanted.push(keyed("start", "", () => h("li", { class: "history-note" }, "This is the beginning of the room.")));
  let previous = null;
  for (const message of messages) {
    const grouped = previous && previous.sender_id === message.sender_id && !previous.deleted && Date.parse(message.created_at) - Date.parse(previous.created_at) < 300000;
    const seen = seenBy.get(message.id) || "";
    const sender = store.user(message.sender_id);
    if (store.isBlocked(message.sender_id) && !message.deleted && !ui.revealed.has(message.id)) {
      wanted.push(keyed(message.id, "blocked", () => renderBlocked(message)));
      previous = null;
      continue;
    }
    const tokens = mentionTokens(message);
    const signature = JSON.stringify([message, seen, grouped, sender.display_name, sender.avatar_url, tokens, store.isBlocked(message.sender_id)]);
    wanted.push(keyed(message.id, signature, () => renderMessage(message, { grouped, seen, sender, tokens })));
    previous = message;
  }
  for (const pending of timeline.pending.values()) {
    wanted.push(keyed(pending.client_msg_id, JSON.stringify([pending.status, pending.error]), () => renderPending(pending)));
  }
  const keep = new Set(wanted);
  for (const child of [...list.children]) if (!keep.has(child)) child.remove();
  wanted.forEach((element, index) => {
    if (list.children[index] !== element) list.insertBefore(element, list.children[index] || null);
  });
  for (const key of [...ui.messageNodes.keys()]) if (!keep.has(ui.messageNodes.get(key).element)) ui.messageNodes.delete(key);

  if (ui.prependPending) {
    list.scrollTop = topBefore + (list.scrollHeight - heightBefore);
    ui.prependPending = false;
  } else if (atBottom || ui.stickToBottom) {
    list.scrollTop = list.scrollHeight;
    ui.stickToBottom = false;
  }
  const typists = store.typists(ui.roomId).map((id) => store.user(id).display_name);
  elements.typing.textContent = typists.length ? `${typists.join(", ")} ${typists.length > 1 ? "are" : "is"} typing…` : "";
  markRead();
}

function keyed(key, signature, build) {
  const known = ui.messageNodes.get(key);
  if (known && known.signature === signature) return known.element;
  const element = build();
  ui.messageNodes.set(key, { element, signature });
  return element;
}

/** For my messages: who has read them, shown under the newest one each reader reached. */
function seenMap(room, messages) {
  const result = new Map();
  const receipts = store.receipts.get(room.id);
  if (!receipts) return result;
  const mine = messages.filter((m) => m.sender_id === store.me.id && !m.deleted);
  const readers = new Map();
  for (const [userId, seq] of receipts) {
    if (userId === store.me.id) continue;
    const last = mine.filter((m) => m.seq <= seq).pop();
    if (last) readers.set(last.id, [...(readers.get(last.id) || []), userId]);
  }
  for (const [messageId, userIds] of readers) {
    result.set(messageId, room.kind === "direct" ? "Seen" : `Seen by ${userIds.map((id) => store.user(id).display_name).join(", ")}`);
  }
  return result;
}

function renderMessage(message, { grouped, seen, sender, tokens }) {
  const mine = message.sender_id === store.me.id;
  const classes = ["msg", mine ? "mine" : "theirs", grouped ? "grouped" : "", message.deleted ? "deleted" : "", mentionsMe(message) ? "mentions-me" : ""].filter(Boolean).join(" ");
  const body = h("div", { class: "bubble" });
  if (!grouped) body.append(h("div", { class: "meta" }, h("span", { class: "sender" }, sender.display_name || sender.username || "…"), h("time", { datetime: message.created_at, title: message.created_at }, formatTime(message.created_at))));
  if (message.reply_to) {
    const quoted = message.reply_to;
    const quoteName = store.user(quoted.sender_id).display_name;
    body.append(
      h(
        "button",
        { class: "quote", title: "Jump to the message", onclick: () => jumpTo(quoted.id) },
        h("span", { class: "quote-name" }, quoteName),
        h("span", { class: "quote-text" }, quoted.deleted ? "Message deleted" : store.isBlocked(quoted.sender_id) ? "Message from a blocked user" : quoted.excerpt || "Photo"),
      ),
    );
  }
  if (message.deleted) {
    body.append(h("div", { class: "text tombstone" }, "Message deleted"));
  } else {
    if (message.media) {
      const full = message.media.url;
      body.append(
        h(
          "button",
          { class: "thumb-button", "aria-label": "Open the image", onclick: () => showImage(full) },
          h("img", { class: "thumb", src: message.media.thumbnail_url || full, alt: message.text || "image", width: thumbSize(message.media).width, height: thumbSize(message.media).height, loading: "lazy" }),
        ),
      );
    }
    if (message.text) body.append(h("div", { class: "text" }, markTokens(message.text, tokens)));
    if (message.edited_at) body.append(h("span", { class: "edited" }, "(edited)"));
  }
  if (message.reactions?.length) {
    body.append(
      h(
        "div",
        { class: "reactions" },
        message.reactions.map((reaction) =>
          h(
            "button",
            { class: `reaction${reaction.me ? " me" : ""}`, dataset: { emoji: reaction.emoji }, "aria-pressed": reaction.me ? "true" : "false", onclick: () => toggleReaction(message, reaction.emoji, !reaction.me) },
            h("span", {}, reaction.emoji),
            h("span", { class: "count" }, String(reaction.count)),
          ),
        ),
      ),
    );
  }
  const actions = h("div", { class: "actions" });
  if (!message.deleted) {
    actions.append(h("button", { class: "act-reply", title: "Reply", onclick: () => startReply(message) }, "↩ Reply"));
    for (const emoji of QUICK_REACTIONS) {
      actions.append(h("button", { class: "act-react", dataset: { emoji }, title: `React ${emoji}`, onclick: () => toggleReaction(message, emoji, true) }, emoji));
    }
    if (mine) {
      if (message.kind === "text") actions.append(h("button", { class: "act-edit", title: "Edit", onclick: () => startEdit(message) }, "Edit"));
      actions.append(h("button", { class: "act-delete", title: "Delete", onclick: () => deleteMessage(message) }, "Delete"));
    } else if (message.kind !== "system") {
      const name = sender.display_name || sender.username || "…";
      if (!store.isBlocked(message.sender_id)) actions.append(h("button", { class: "act-block", title: `Block ${name}`, onclick: () => blockUser(message.sender_id) }, `Block ${name}`));
      actions.append(h("button", { class: "act-report", title: "Report this message", onclick: () => showReportForm(message) }, "Report"));
    }
  }
  body.append(actions);
  if (mine && !message.deleted) body.append(h("div", { class: "delivery" }, seen || "Sent"));
  return h(
    "li",
    { class: classes, id: `m-${message.id}`, tabindex: "0", dataset: { id: message.id, seq: String(message.seq), sender: message.sender_id } },
    grouped ? h("span", { class: "avatar-space" }) : avatar(sender),
    body,
  );
}

/** A message of someone I block: one line, the message itself once clicked. */
function renderBlocked(message) {
  const show = () => {
    ui.revealed.add(message.id);
    scheduleRender();
  };
  return h(
    "li",
    { class: "msg theirs blocked", id: `m-${message.id}`, dataset: { id: message.id, seq: String(message.seq), sender: message.sender_id } },
    h("span", { class: "avatar-space" }),
    h("button", { class: "blocked-note subtle", title: "Show the message", onclick: show }, "Message from a blocked user"),
  );
}

function thumbSize(media) {
  const scale = Math.min(1, 240 / Math.max(media.width || 240, media.height || 240));
  return { width: Math.round((media.width || 240) * scale), height: Math.round((media.height || 240) * scale) };
}

function renderPending(pending) {
  const body = h("div", { class: "bubble" });
  if (pending.previewUrl) body.append(h("img", { class: "thumb", src: pending.previewUrl, alt: "image being sent" }));
  if (pending.text) body.append(h("div", { class: "text" }, markTokens(pending.text, mentionTokens(pending))));
  const state = h("div", { class: "delivery" });
  if (pending.status === "failed") {
    state.append(
      h("span", { class: "failed-text" }, `Not sent: ${pending.error || "failed"}`),
      h("button", { class: "retry", onclick: () => attemptSend(pending) }, "Retry"),
      h("button", { class: "discard subtle", onclick: () => discardPending(pending) }, "Discard"),
    );
  } else {
    state.append(pending.status === "queued" ? "Waiting for the connection…" : "Sending…");
  }
  body.append(state);
  return h("li", { class: `msg mine pending ${pending.status}`, dataset: { clientMsgId: pending.client_msg_id } }, avatar(store.me), body);
}

export function onScroll() {
  const list = elements.messages;
  if (list.scrollTop < 80 && ui.roomId) {
    const roomId = ui.roomId;
    const timeline = store.timeline(roomId);
    if (timeline.hasMore && !timeline.loading) {
      ui.prependPending = true;
      store.loadOlder(roomId).catch((error) => toast(messageOf(error)));
    }
  }
  markRead();
}

/** Scroll to a quoted message, loading older pages until it is there. */
async function jumpTo(messageId) {
  const roomId = ui.roomId;
  for (let pages = 0; pages < 20 && !store.timeline(roomId).byId.has(messageId); pages += 1) {
    ui.prependPending = true;
    if (!(await store.loadOlder(roomId))) break;
  }
  app.render();
  const element = document.getElementById(`m-${messageId}`);
  if (!element) {
    toast("That message is no longer available.");
    return;
  }
  element.scrollIntoView({ block: "center", behavior: "smooth" });
  element.classList.add("flash");
  setTimeout(() => element.classList.remove("flash"), 1600);
}

export function markRead() {
  const roomId = ui.roomId;
  if (!roomId || document.visibilityState !== "visible") return;
  const room = store.rooms.get(roomId);
  const list = elements.messages;
  if (!room || list.scrollHeight - list.scrollTop - list.clientHeight > 80) return;
  const seq = Math.max(store.timeline(roomId).newestSeq(), store.lastSeq.get(roomId) || 0);
  if (seq <= (room.last_read_seq || 0) || ui.readingSeq === `${roomId}:${seq}`) return;
  ui.readingSeq = `${roomId}:${seq}`;
  act("read", { room_id: roomId, seq }, () => api.post(`/rooms/${roomId}/read`, { seq }))
    .then((result) => {
      room.last_read_seq = result.last_read_seq;
      room.unread_count = result.unread_count;
      if (result.unread_mention_count !== undefined) room.unread_mention_count = result.unread_mention_count;
      scheduleRender();
    })
    .catch(() => {
      ui.readingSeq = null;
    });
}
