// Web Push on this device: the service worker (/sw.js), the browser's PushSubscription and
// the push device registered with the server for it (POST /users/me/push). The profile's
// "Notifications on this device" toggle calls enablePush and disablePush; logging out calls
// forgetPushDevice. The device registered is remembered per user, so that it can be removed
// and replaced when the push service renews the subscription.

import { api, store } from "./context.js";

const WORKER_URL = "/sw.js";
const DEVICE_KEY = "cronchat.push"; // {user_id, id, endpoint}: the device registered from this browser
// pushManager.subscribe waits on the browser's push service, which may never answer (no
// network to it, a browser built without one); past this the toggle says so.
const SUBSCRIBE_TIMEOUT_MS = 20000;

/** An error worth showing as is: a sentence for the user. */
export class PushProblem extends Error {}

export function isPushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** Whether pushes reach this device: its subscription is one of my registered devices. */
export async function isPushEnabled() {
  if (!isPushSupported() || Notification.permission !== "granted") return false;
  const subscription = await currentSubscription();
  if (!subscription) return false;
  const { pushers } = await api.get("/users/me/push");
  return pushers.some((pusher) => pusher.kind === "webpush" && pusher.endpoint === subscription.endpoint);
}

/** Ask for permission, subscribe with the server's VAPID key and register the device. */
export async function enablePush() {
  if (!isPushSupported()) throw new PushProblem("This browser cannot receive push notifications.");
  const permission = await Notification.requestPermission();
  if (permission === "denied") throw new PushProblem("Notifications are blocked for this site. Allow them in the browser's site settings, then try again.");
  if (permission !== "granted") throw new PushProblem("Notifications were not allowed. Turn this on again to be asked once more.");
  const registration = await registerWorker();
  const { public_key: publicKey } = await api.get("/push/vapid");
  const subscription = await subscribe(registration, base64UrlBytes(publicKey));
  await registerDevice(subscription);
}

/** Stop pushes to this device: remove it from the server, then unsubscribe the browser. */
export async function disablePush() {
  const subscription = await currentSubscription();
  const remembered = rememberedDevice();
  const { pushers } = await api.get("/users/me/push");
  const ours = pushers.filter((pusher) => pusher.id === remembered?.id || (subscription && pusher.endpoint === subscription.endpoint));
  for (const pusher of ours) await api.delete(`/users/me/push/${encodeURIComponent(pusher.id)}`);
  await subscription?.unsubscribe();
  localStorage.removeItem(DEVICE_KEY);
}

/** On logout or account deletion: the server drops the session's devices by itself; the
 * browser's subscription goes too, so that nothing is pushed to it for the next user. */
export async function forgetPushDevice() {
  localStorage.removeItem(DEVICE_KEY);
  if (!isPushSupported()) return;
  try {
    const subscription = await currentSubscription();
    await subscription?.unsubscribe();
  } catch {
    /* nothing more can be done without the push service */
  }
}

/** After a renewal by the push service (the worker's pushsubscriptionchange, or one seen
 * on starting): register the new subscription in place of the device remembered. */
export async function renewPushDevice() {
  const remembered = rememberedDevice();
  if (!remembered || !isPushSupported() || Notification.permission !== "granted") return;
  const subscription = await currentSubscription();
  if (!subscription || subscription.endpoint === remembered.endpoint) return;
  await registerDevice(subscription);
  await api.delete(`/users/me/push/${encodeURIComponent(remembered.id)}`).catch(() => {});
}

/**
 * Listen to the service worker: {type: "open-room"} after a notification was clicked,
 * {type: "push-subscription-changed"} after the push service renewed the subscription.
 */
export function listenToServiceWorker(openRoom) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data?.type === "open-room" && typeof event.data.room_id === "string") openRoom(event.data.room_id);
    if (event.data?.type === "push-subscription-changed") renewPushDevice().catch(() => {});
  });
  navigator.serviceWorker.startMessages();
}

async function currentSubscription() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

async function registerWorker() {
  try {
    await navigator.serviceWorker.register(WORKER_URL, { scope: "/" });
  } catch (error) {
    throw new PushProblem(`The notification worker could not be installed: ${error.message}`);
  }
  return navigator.serviceWorker.ready;
}

/** The browser's subscription for this key: an existing one made with another key (the
 * server's key changed) is replaced. */
async function subscribe(registration, applicationServerKey) {
  const existing = await registration.pushManager.getSubscription();
  if (existing && !sameBytes(existing.options.applicationServerKey, applicationServerKey)) await existing.unsubscribe();
  else if (existing) return existing;
  let timer = null;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new PushProblem("The browser's push service did not answer. Try again later.")), SUBSCRIBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey }), timeout]);
  } catch (error) {
    if (error instanceof PushProblem) throw error;
    if (error.name === "NotAllowedError") throw new PushProblem("Notifications are blocked for this site. Allow them in the browser's site settings, then try again.");
    throw new PushProblem(`The browser's push service is not available here (${error.message}). Private windows and some browsers have none.`);
  } finally {
    clearTimeout(timer);
  }
}

async function registerDevice(subscription) {
  const { endpoint, keys } = subscription.toJSON();
  const pusher = await api.post("/users/me/push", { kind: "webpush", endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
  localStorage.setItem(DEVICE_KEY, JSON.stringify({ user_id: store.me.id, id: pusher.id, endpoint }));
}

function rememberedDevice() {
  try {
    const device = JSON.parse(localStorage.getItem(DEVICE_KEY) || "null");
    return device?.user_id === store.me?.id ? device : null;
  } catch {
    return null;
  }
}

function base64UrlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function sameBytes(buffer, bytes) {
  if (!buffer) return false;
  const other = new Uint8Array(buffer);
  return other.length === bytes.length && other.every((byte, index) => byte === bytes[index]);
}
