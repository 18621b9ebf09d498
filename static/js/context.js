// What the client's modules share: the REST client, the state, the socket once connected,
// the main elements, and small helpers for errors and actions.

import { Api, ApiError } from "./api.js";
import { Store } from "./store.js";

export const api = new Api();
export const store = new Store(api);
export const root = document.getElementById("app");
/** The socket (realtime.js) while logged in, and the function that redraws the screen. */
export const app = { realtime: null, render: () => {} };
/** The main elements, filled by the layout. */
export const elements = {};

export const ui = {
  roomId: null,
  replyTo: null, // message
  editing: null, // message
  attachment: null, // {file, url}
  mentionPicks: null, // the draft's picks (mentions.js)
  picker: null, // the open mention picker: {roomId, start, end, options, active}
  roomMenuOpen: false, // the room's notification menu (notifications.js)
  roomMenuDrawn: null, // what the open menu shows, so that it is redrawn only on a change
  mentionAlert: false, // a mention alerted while the tab was hidden: the title says "(@)"
  status: "offline",
  lastTypingAt: 0,
  revealed: new Set(), // ids of messages from blocked users shown anyway (clicked)
  reportsRequested: new Set(), // rooms whose open reports were asked for once
  reportsPanel: null, // the open moderation queue (moderation.js): {roomId, list, error, drawn}
  messageNodes: new Map(), // message id or client_msg_id -> {element, signature}
  renderQueued: false,
  stickToBottom: true,
};

export function messageOf(error) {
  if (error instanceof ApiError) return error.userMessage;
  return error?.message || "Something went wrong.";
}

export function toast(text) {
  if (!elements.toast) return;
  elements.toast.textContent = text;
  elements.toast.hidden = false;
  elements.toast.onclick = () => {
    elements.toast.hidden = true;
  };
  clearTimeout(ui.toastTimer);
  ui.toastTimer = setTimeout(() => {
    elements.toast.hidden = true;
  }, 5000);
}

/** Redraw on the next frame, once however many changes come before it. */
export function scheduleRender() {
  if (ui.renderQueued) return;
  ui.renderQueued = true;
  requestAnimationFrame(() => {
    ui.renderQueued = false;
    if (elements.roomList) app.render();
  });
}

/** An action over the WebSocket when connected; the same action over REST otherwise. */
export async function act(type, fields, rest) {
  if (app.realtime?.isReady) return app.realtime.request(type, fields);
  return rest();
}
