// Writing: the composer (Enter sends, Shift+Enter breaks the line, Escape cancels), replies,
// edits, image attachments, and sends that are idempotent by client_msg_id and show
// pending, waiting, failed (with retry) until the server acknowledges them. Sends and edits
// carry the mentions picked in the text (mentions.js).

import { ApiError } from "./api.js";
import { act, api, app, elements, messageOf, scheduleRender, store, toast, ui } from "./context.js";
import { confirmAction } from "./dialogs.js";
import { h } from "./dom.js";
import { closePicker, collectMentions, onPickerKey, pickMentionsOf, resetMentions, updatePicker } from "./mentions.js";
import { formatUntil, noteMuted } from "./moderation.js";

const TYPING_EVERY_MS = 3000;

export function onComposerKey(event) {
  if (onPickerKey(event)) return;
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitComposer();
  } else if (event.key === "Escape") {
    event.preventDefault();
    cancelContext();
  }
}

export function onComposerInput() {
  const input = elements.input;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  updatePicker();
  if (!ui.roomId || !input.value.trim() || ui.editing) return;
  if (Date.now() - ui.lastTypingAt < TYPING_EVERY_MS || !app.realtime?.isReady) return;
  ui.lastTypingAt = Date.now();
  app.realtime.request("typing", { room_id: ui.roomId }).catch(() => {});
}

export function startReply(message) {
  ui.editing = null;
  ui.replyTo = message;
  showContextBar("Replying to", store.user(message.sender_id).display_name, message.text || (message.media ? "Photo" : ""));
  elements.input.focus();
}

export function startEdit(message) {
  ui.replyTo = null;
  ui.editing = message;
  elements.input.value = message.text || "";
  pickMentionsOf(message);
  showContextBar("Editing your message", "", "");
  elements.input.focus();
}

function showContextBar(label, name, text) {
  const bar = elements.contextBar;
  bar.replaceChildren(
    h("div", { class: "context-text" }, h("strong", {}, `${label} ${name}`.trim()), text ? h("span", { class: "context-excerpt" }, text) : null),
    h("button", { class: "context-cancel subtle", title: "Cancel (Escape)", onclick: cancelContext }, "✕"),
  );
  bar.hidden = false;
}

export function cancelContext() {
  if (!elements.contextBar) return;
  if (ui.editing) {
    elements.input.value = "";
    resetMentions();
  }
  closePicker();
  ui.replyTo = null;
  ui.editing = null;
  elements.contextBar.hidden = true;
  clearAttachment();
}

export function attach(file) {
  if (!file) return;
  clearAttachment();
  ui.attachment = { file, url: URL.createObjectURL(file) };
  elements.preview.replaceChildren(
    h("img", { class: "preview-image", src: ui.attachment.url, alt: "preview" }),
    h("span", { class: "preview-name" }, file.name),
    h("button", { class: "subtle", title: "Remove the image", onclick: clearAttachment }, "✕"),
  );
  elements.preview.hidden = false;
  elements.input.focus();
}

function clearAttachment() {
  ui.attachment = null;
  if (elements.file) elements.file.value = "";
  if (elements.preview) {
    elements.preview.hidden = true;
    elements.preview.replaceChildren();
  }
}

export async function submitComposer() {
  const roomId = ui.roomId;
  const text = elements.input.value.trim();
  if (!roomId) return;
  if (ui.editing) {
    const message = ui.editing;
    if (!text) return;
    const mentions = collectMentions(roomId, text);
    try {
      const result = await act("message.edit", { room_id: roomId, message_id: message.id, text, mentions }, () => api.patch(`/rooms/${roomId}/messages/${message.id}`, { text, mentions }).then((m) => ({ message: m })));
      store.timeline(roomId).upsert(result.message);
      cancelContext();
      elements.input.value = "";
      scheduleRender();
    } catch (error) {
      if (!noteMuted(roomId, error)) toast(messageOf(error));
    }
    return;
  }
  if (!text && !ui.attachment) return;
  const pending = {
    client_msg_id: crypto.randomUUID(),
    room_id: roomId,
    text,
    reply_to_id: ui.replyTo?.id || null,
    mentions: collectMentions(roomId, text),
    file: ui.attachment?.file || null,
    previewUrl: ui.attachment?.url || null,
    media_id: null,
    status: "pending",
  };
  store.timeline(roomId).pending.set(pending.client_msg_id, pending);
  elements.input.value = "";
  elements.input.style.height = "auto";
  resetMentions();
  ui.attachment = null;
  ui.replyTo = null;
  elements.contextBar.hidden = true;
  elements.preview.hidden = true;
  elements.file.value = "";
  ui.stickToBottom = true;
  scheduleRender();
  attemptSend(pending);
}

/** Send (or resend, with the same client_msg_id, so it happens once) a pending message. */
export async function attemptSend(pending) {
  pending.status = "pending";
  pending.error = null;
  scheduleRender();
  const timeline = store.timeline(pending.room_id);
  try {
    if (pending.file && !pending.media_id) {
      const media = await api.upload("POST", "/media", pending.file);
      pending.media_id = media.id;
    }
    if (!app.realtime?.isReady) throw Object.assign(new Error("offline"), { code: "offline" });
    const frame = { room_id: pending.room_id, client_msg_id: pending.client_msg_id };
    if (pending.text) frame.text = pending.text;
    if (pending.media_id) {
      frame.kind = "image";
      frame.media_id = pending.media_id;
    }
    if (pending.reply_to_id) frame.reply_to_id = pending.reply_to_id;
    if (pending.mentions) frame.mentions = pending.mentions;
    const result = await app.realtime.request("message.send", frame);
    timeline.upsert(result.message);
    timeline.pending.delete(pending.client_msg_id);
    if (pending.previewUrl) setTimeout(() => URL.revokeObjectURL(pending.previewUrl), 5000);
  } catch (error) {
    if (error.code === "offline" || error.code === "network") {
      pending.status = "queued";
    } else {
      pending.status = "failed";
      pending.error = error instanceof ApiError ? error.userMessage : error.message;
      if (noteMuted(pending.room_id, error)) pending.error = error.details.until ? `you are muted until ${formatUntil(error.details.until)}` : "you are muted";
    }
  }
  scheduleRender();
}

export function resendQueued() {
  for (const timeline of store.timelines.values()) {
    for (const pending of timeline.pending.values()) if (pending.status !== "failed") attemptSend(pending);
  }
}

export function discardPending(pending) {
  store.timeline(pending.room_id).pending.delete(pending.client_msg_id);
  scheduleRender();
}

export async function toggleReaction(message, emoji, add) {
  const roomId = message.room_id;
  const path = `/rooms/${roomId}/messages/${message.id}/reactions/${encodeURIComponent(emoji)}`;
  try {
    await act(add ? "reaction.add" : "reaction.remove", { room_id: roomId, message_id: message.id, emoji }, () => (add ? api.put(path) : api.delete(path)));
  } catch (error) {
    if (!noteMuted(roomId, error)) toast(messageOf(error));
  }
}

export async function deleteMessage(message) {
  if (!(await confirmAction("Delete this message for everyone?", "Delete"))) return;
  try {
    await act("message.delete", { room_id: message.room_id, message_id: message.id }, () => api.delete(`/rooms/${message.room_id}/messages/${message.id}`));
  } catch (error) {
    toast(messageOf(error));
  }
}
