// CronChat's service worker: shows the server's Web Push payloads as notifications while no
// tab of the app is connected (docs/protocol.md §7.6). Served as /sw.js so that its scope is
// the whole app. It caches nothing and handles no fetch: the app works the same without it.
//
// A "message" push shows one notification per room (tag "room:<id>"), a newer push replacing
// the older; a "read" push (the room was read on some device) closes that room's
// notification. Browsers ask that every push show a notification (userVisibleOnly); a "read"
// shows none on purpose. It only ever follows a "message" push whose notification it closes,
// and Chromium and Firefox tolerate such a push within the budget that shown notifications
// earn, so the rule is kept in practice without a notification that only says "read".

const ROOM_TAG_PREFIX = "room:";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("push", (event) => event.waitUntil(handlePush(readPayload(event))));
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const roomId = event.notification.data?.room_id;
  event.waitUntil(openRoomWindow(roomId));
});
self.addEventListener("pushsubscriptionchange", (event) => event.waitUntil(resubscribe(event)));

/** The push's JSON, or null when it has none or it is not JSON. */
function readPayload(event) {
  try {
    return event.data ? event.data.json() : null;
  } catch {
    return null;
  }
}

/** Show, replace or close a room's notification as the payload says. */
async function handlePush(payload) {
  if (payload?.type === "read" && typeof payload.room_id === "string") {
    await closeRoomNotifications(payload.room_id);
    return;
  }
  if (payload?.type === "message" && typeof payload.room_id === "string") {
    const { title, options } = messageNotification(payload);
    await self.registration.showNotification(title, options);
    return;
  }
  // Not a payload of ours: still say something, as the push contract asks.
  await self.registration.showNotification("CronChat", { body: "You have new activity.", tag: "cronchat" });
}

/**
 * The notification of a "message" push: "<sender> in <room>" and the excerpt, or, when the
 * server sends no content (CRONCHAT_PUSH_CONTENT=false: no names, no excerpt), a generic
 * "New message" with the room's unread count.
 */
function messageNotification(payload) {
  const sender = payload.sender?.display_name;
  const options = {
    tag: ROOM_TAG_PREFIX + payload.room_id,
    renotify: true, // a newer message replaces the notification and alerts again
    timestamp: Date.now(),
    data: { room_id: payload.room_id, seq: payload.seq, message_id: payload.message_id },
  };
  if (typeof sender !== "string") {
    const unread = Number(payload.unread_count) || 0;
    options.body = unread > 1 ? `${unread} unread messages` : "1 unread message";
    return { title: payload.mention ? "New mention" : "New message", options };
  }
  const title = payload.room_name ? `${sender} in ${payload.room_name}` : sender;
  options.body = payload.excerpt ?? "📷 Photo";
  return { title, options };
}

async function closeRoomNotifications(roomId) {
  const shown = await self.registration.getNotifications({ tag: ROOM_TAG_PREFIX + roomId });
  for (const notification of shown) notification.close();
}

/**
 * Bring the app to the room: an open window of the app is focused and asked to open it
 * (the page listens for {type: "open-room"}); with none, a new one opens at /#room=<id>.
 */
async function openRoomWindow(roomId) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const appWindow = windows.find((client) => new URL(client.url).origin === self.location.origin);
  if (appWindow) {
    // Focusing needs the click's user activation; without it the room opens all the same.
    const focused = await appWindow.focus().catch(() => appWindow);
    if (roomId) (focused || appWindow).postMessage({ type: "open-room", room_id: roomId });
    return;
  }
  await self.clients.openWindow(roomId ? `/#room=${encodeURIComponent(roomId)}` : "/");
}

/**
 * The push service replaced or dropped the subscription: subscribe again with the same key
 * (best effort) and tell open windows, which register the new one with the server. The
 * worker holds no session of its own, so a window opened later does it instead (push.js).
 */
async function resubscribe(event) {
  const key = event.oldSubscription?.options?.applicationServerKey;
  if (!key) return;
  try {
    await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  } catch {
    return; // the page shows the toggle off on its next visit
  }
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) client.postMessage({ type: "push-subscription-changed" });
}
