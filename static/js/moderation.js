// Moderation in the client: blocking a user and reporting a message (from a message's
// actions), the room's queue of open reports for its admins and owners (live from `report`
// frames), and the muted notice of the composer.

import { api, elements, messageOf, scheduleRender, store, toast, ui } from "./context.js";
import { closeOverlay, confirmAction, openOverlay } from "./dialogs.js";
import { formatTime, h } from "./dom.js";

/** The reasons of API.md's Moderation section, with the words shown for them. */
export const REPORT_REASONS = [
  ["spam", "Spam"],
  ["harassment", "Harassment"],
  ["hate", "Hate"],
  ["sexual", "Sexual content"],
  ["violence", "Violence"],
  ["self_harm", "Self-harm"],
  ["other", "Something else"],
];
const COMMENT_MAX = 1000;

function displayName(userId) {
  const user = store.user(userId);
  return user.display_name || user.username || "…";
}

// ---------------------------------------------------------------- blocks

/** PUT /users/me/blocks/{id}; `ask` first (from a message's actions; the member list's
 * button is explicit enough). */
export async function blockUser(userId, { ask = true } = {}) {
  const name = displayName(userId);
  const question = `Block ${name}? Their messages will be hidden from you, and they cannot message you directly.`;
  if (ask && !(await confirmAction(question, "Block"))) return false;
  try {
    await api.put(`/users/me/blocks/${encodeURIComponent(userId)}`);
    store.setBlocks([...store.blocked, userId]);
    toast(`You blocked ${name}.`);
    store.refreshRooms().catch(() => {});
    return true;
  } catch (error) {
    toast(messageOf(error));
    return false;
  }
}

export async function unblockUser(userId) {
  try {
    await api.delete(`/users/me/blocks/${encodeURIComponent(userId)}`);
    store.setBlocks([...store.blocked].filter((id) => id !== userId));
    toast(`You unblocked ${displayName(userId)}.`);
    store.refreshRooms().catch(() => {});
    return true;
  } catch (error) {
    toast(messageOf(error));
    return false;
  }
}

// ---------------------------------------------------------------- reports

/** The small form of a report: a reason, an optional comment. */
export function showReportForm(message) {
  const reason = h("select", { class: "report-reason", "aria-label": "Reason" }, h("option", { value: "" }, "Choose a reason…"), REPORT_REASONS.map(([value, label]) => h("option", { value }, label)));
  const comment = h("textarea", { class: "report-comment", rows: 3, maxlength: COMMENT_MAX, placeholder: "Anything the moderators should know (optional)", "aria-label": "Comment" });
  const counter = h("span", { class: "muted counter" }, `0/${COMMENT_MAX}`);
  comment.addEventListener("input", () => {
    counter.textContent = `${comment.value.length}/${COMMENT_MAX}`;
  });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { class: "primary send-report" }, "Send report");
  submit.addEventListener("click", async () => {
    error.textContent = "";
    if (!reason.value) {
      error.textContent = "Choose a reason.";
      return;
    }
    const body = { reason: reason.value };
    if (comment.value.trim()) body.comment = comment.value.trim().slice(0, COMMENT_MAX);
    submit.disabled = true;
    try {
      const report = await api.post(`/rooms/${encodeURIComponent(message.room_id)}/messages/${encodeURIComponent(message.id)}/report`, body);
      if (store.moderates(message.room_id)) store.receiveReport(report);
      closeOverlay();
      toast("Thank you: the room's moderators will look at it.");
    } catch (caught) {
      error.textContent = messageOf(caught);
      submit.disabled = false;
    }
  });
  const excerpt = message.text || (message.media ? "Photo" : "");
  openOverlay(
    "Report a message",
    h("blockquote", { class: "report-excerpt" }, h("strong", {}, displayName(message.sender_id)), " ", excerpt),
    h("label", { class: "field" }, "Reason", reason),
    h("label", { class: "field" }, "Comment", comment, counter),
    error,
    submit,
  );
  reason.focus();
}

/** The open reports of a room for its admins and owners, live while the panel is open. */
export async function showReports(roomId) {
  const room = store.rooms.get(roomId);
  if (!room || !store.moderates(roomId)) return;
  const list = h("ul", { class: "report-list", "aria-label": "Open reports" });
  const error = h("p", { class: "form-error", role: "alert" });
  const panel = openOverlay(`Reports in ${room.name}`, list, error);
  panel.classList.add("reports-panel");
  ui.reportsPanel = { roomId, list, error, drawn: null };
  drawReports();
  try {
    await store.loadReports(roomId);
  } catch (caught) {
    error.textContent = messageOf(caught);
  }
}

/** Redraw the open panel when its room's queue changed (store.changed({reports})). */
export function drawReports() {
  const panel = ui.reportsPanel;
  if (!panel) return;
  if (!panel.list.isConnected) {
    ui.reportsPanel = null;
    return;
  }
  const loaded = store.reportsLoaded(panel.roomId);
  const reports = store.openReports(panel.roomId);
  const signature = JSON.stringify([loaded, reports.map((report) => report.id)]);
  if (signature === panel.drawn) return;
  panel.drawn = signature;
  if (!loaded) {
    panel.list.replaceChildren(h("li", { class: "muted loading-reports" }, "Loading…"));
    return;
  }
  if (!reports.length) {
    panel.list.replaceChildren(h("li", { class: "muted no-reports" }, "No open reports."));
    return;
  }
  panel.list.replaceChildren(...reports.map((report) => reportItem(report, panel)));
}

function reportItem(report, panel) {
  const snapshot = report.snapshot || {};
  const reason = REPORT_REASONS.find(([value]) => value === report.reason)?.[1] || report.reason;
  const note = h("input", { class: "report-note", maxlength: 1000, placeholder: "Note (optional)", "aria-label": "Note" });
  const handle = async (status, button) => {
    panel.error.textContent = "";
    button.disabled = true;
    const body = { status };
    if (note.value.trim()) body.note = note.value.trim();
    try {
      store.receiveReport(await api.patch(`/rooms/${encodeURIComponent(report.room_id)}/reports/${encodeURIComponent(report.id)}`, body));
    } catch (caught) {
      panel.error.textContent = messageOf(caught);
      button.disabled = false;
    }
  };
  const resolve = h("button", { class: "primary resolve-report" }, "Resolve");
  resolve.addEventListener("click", () => handle("resolved", resolve));
  const dismiss = h("button", { class: "dismiss-report" }, "Dismiss");
  dismiss.addEventListener("click", () => handle("dismissed", dismiss));
  const body = snapshot.kind === "image" ? `📷 ${snapshot.text || "Photo"}` : snapshot.text || "";
  return h(
    "li",
    { class: "report", dataset: { id: report.id, messageId: report.message_id } },
    h("div", { class: "report-head" }, h("span", { class: "report-reason-label" }, reason), h("time", { class: "muted", datetime: report.created_at }, formatTime(report.created_at))),
    h(
      "blockquote",
      { class: "report-snapshot" },
      h("span", { class: "sender" }, displayName(snapshot.sender_id)),
      " ",
      h("span", { class: "snapshot-text" }, body),
      snapshot.edited_at ? h("span", { class: "edited" }, " (edited)") : null,
    ),
    snapshot.kind === "image" && snapshot.media_id ? reportImage(snapshot.media_id) : null,
    report.comment ? h("p", { class: "report-comment-text" }, report.comment) : null,
    note,
    h("div", { class: "report-buttons" }, dismiss, resolve),
  );
}

/** A reported image stays viewable to the room's moderators while the report is open:
 * loaded with the token on a click, not by a link. */
function reportImage(mediaId) {
  const holder = h("div", { class: "report-image" });
  const show = h("button", { class: "subtle show-report-image" }, "Show the image");
  show.addEventListener("click", async () => {
    show.disabled = true;
    try {
      const url = await api.imageUrl(`/media/${encodeURIComponent(mediaId)}`);
      holder.replaceChildren(h("img", { class: "thumb", src: url, alt: "the reported image" }));
    } catch (caught) {
      holder.replaceChildren(h("span", { class: "muted" }, messageOf(caught)));
    }
  });
  holder.append(show);
  return holder;
}

/** After a reconnect the queue is read again (the `report` frame is not replayed). */
export function refreshReports() {
  for (const roomId of store.reports.keys()) {
    if (store.moderates(roomId)) store.loadReports(roomId).catch(() => {});
  }
}

// ---------------------------------------------------------------- muted

/** "You are muted until ..." above the composer while the room's admins mute me. */
export function renderMutedNote() {
  const note = elements.mutedNote;
  if (!note) return;
  const room = ui.roomId ? store.rooms.get(ui.roomId) : null;
  const until = room?.muted_until ? Date.parse(room.muted_until) : 0;
  const text = until > Date.now() ? `You are muted until ${formatUntil(room.muted_until)}.` : "";
  if (note.textContent !== text) note.textContent = text;
  note.hidden = !text;
}

/** A send or edit answered 403 muted: remember until when, for the notice. */
export function noteMuted(roomId, error) {
  if (error?.details?.reason !== "muted") return false;
  const room = store.rooms.get(roomId);
  if (room) room.muted_until = error.details.until || null;
  scheduleRender();
  return true;
}

export function formatUntil(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}
