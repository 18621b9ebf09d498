// CronChat's browser client, built only on the public API (REST + one WebSocket). This
// module starts it, wires the socket to the state and lays out the screen; room.js draws a
// room, composer.js writes to it (mentions.js offers whom to mention), notifications.js holds
// a room's notification menu, dialogs.js the dialogs, moderation.js blocks, reports and the
// moderation queue, push.js this device's Web Push (with the service worker, /sw.js),
// store.js the state.

import { showAuth } from "./auth.js";
import { attach, onComposerInput, onComposerKey, resendQueued, submitComposer } from "./composer.js";
import { api, app, elements, messageOf, root, scheduleRender, store, toast, ui } from "./context.js";
import { closeOverlay, showMembers, showNewDirect, showNewGroup, showProfile } from "./dialogs.js";
import { avatar, clear, formatTime, h } from "./dom.js";
import { closePicker } from "./mentions.js";
import { drawReports, refreshReports, renderMutedNote, showReports } from "./moderation.js";
import { closeRoomMenu, isMuted, mutedText, onRoomMenuKey, renderRoomMenu, toggleRoomMenu } from "./notifications.js";
import { forgetPushDevice, listenToServiceWorker, renewPushDevice } from "./push.js";
import { Realtime } from "./realtime.js";
import { closeRoom, markRead, onScroll, openRoom, renderRoom, roomName } from "./room.js";

app.render = render;

function login(notice = "") {
  app.realtime?.stop();
  app.realtime = null;
  showAuth(notice, startChat);
}

function boot() {
  listenToServiceWorker(openRoomIfKnown);
  window.addEventListener("hashchange", openRoomFromAddress);
  api.onLoggedOut = () => login("Your session has ended. Please log in again.");
  if (api.loggedIn) startChat().catch((error) => login(messageOf(error)));
  else login();
}

async function startChat() {
  store.me = await api.get("/users/me");
  store.rememberUser(store.me);
  await store.loadRooms();
  await store.loadBlocks().catch(() => {});
  buildLayout();
  app.realtime = new Realtime(api, { onReady, onFrame, onStatus });
  app.realtime.start();
  scheduleRender();
  openRoomFromAddress();
  renewPushDevice().catch(() => {});
}

/** `/#room=<id>`, where a notification clicked with no window open leads: open that room,
 * and take the room out of the address so that a reload does not reopen it. */
function openRoomFromAddress() {
  const match = /^#room=([^&]+)$/.exec(location.hash);
  if (!match || !elements.roomList) return;
  history.replaceState(null, "", location.pathname + location.search);
  let roomId = null;
  try {
    roomId = decodeURIComponent(match[1]);
  } catch {
    return; // not an id of ours
  }
  openRoomIfKnown(roomId);
}

/** A room named from outside the page (a notification, the address), if it is one of mine. */
function openRoomIfKnown(roomId) {
  if (!elements.roomList) return; // not logged in yet: the address keeps it until then
  if (store.rooms.has(roomId)) openRoom(roomId);
  else toast("That room is no longer available.");
}

// ---------------------------------------------------------------- realtime

let readyCount = 0;

async function onReady(ready) {
  readyCount += 1;
  const first = readyCount === 1; // blocks were just loaded, no report missed yet
  store.me = { ...store.me, ...ready.user };
  store.rememberUser(store.me);
  const resume = {};
  for (const [roomId, seq] of Object.entries(ready.rooms)) {
    if (!store.lastSeq.has(roomId)) {
      store.lastSeq.set(roomId, seq); // joined while away: load it, its history comes by REST
      store.loadRoom(roomId, seq).catch(() => {});
    } else if (seq > store.lastSeq.get(roomId)) {
      resume[roomId] = store.lastSeq.get(roomId);
    }
  }
  for (const [roomId, seq] of store.lastSeq) if (!(roomId in ready.rooms)) resume[roomId] = seq;
  try {
    if (Object.keys(resume).length) await resumeRooms(resume);
    await store.refreshRooms();
    if (!first) {
      await store.loadBlocks();
      refreshReports();
    }
  } catch (error) {
    toast(messageOf(error));
  }
  resendQueued();
  if (ui.roomId) openRoom(ui.roomId, { keepComposer: true });
  scheduleRender();
}

async function resumeRooms(rooms) {
  const result = await app.realtime.request("resume", { rooms });
  for (const [roomId, outcome] of Object.entries(result.rooms || {})) {
    if (outcome === "resync_required") store.fillHole(roomId);
    else if (outcome !== "ok") store.removeRoom(roomId);
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "event":
      if (frame.event.type === "member.banned" && frame.event.data?.user?.id === store.me.id && store.rooms.has(frame.event.room_id)) {
        toast(`You were banned from ${roomName(store.rooms.get(frame.event.room_id))}.`);
      }
      store.receiveEvent(frame.event);
      // A new or deleted message brings our own summary of the room in the same frame.
      if (frame.room) store.summary(frame.room);
      break;
    case "room.summary":
      store.summary(frame.room);
      break;
    case "receipt":
      store.receipt(frame);
      break;
    case "typing":
      store.typingFrom(frame);
      setTimeout(scheduleRender, 5100);
      break;
    case "presence":
      store.presence(frame);
      break;
    case "user.updated":
      // A new name or avatar, or a deleted account ("Deleted user").
      if (frame.user) store.rememberUser(frame.user, { snapshot: true });
      store.changed({ users: true, rooms: true });
      break;
    case "mention":
      // The counts came in the event frame before it (its `room`); this is the alert.
      if (frame.notify && document.visibilityState === "hidden") {
        ui.mentionAlert = true;
        updateTitle();
      }
      break;
    case "blocks":
      store.setBlocks(frame.user_ids || []);
      // Messages of blocked users count in no unread count: read the counts again.
      store.refreshRooms().catch(() => {});
      break;
    case "report":
      if (frame.report) store.receiveReport(frame.report);
      break;
    case "resync": {
      const rooms = Object.fromEntries(store.lastSeq);
      if (Object.keys(rooms).length) resumeRooms(rooms).catch(() => {});
      break;
    }
    case "resync_required":
      store.fillHole(frame.room_id);
      break;
    case "error":
      if (frame.code === "rate_limited") toast("Slow down a little: too many actions at once.");
      break;
    default:
      break;
  }
}

function onStatus(status) {
  if (status === "offline" && ui.status === "online") {
    // Presence is unknown while we are away; GET /rooms and members refresh it on return.
    for (const user of store.users.values()) if (user.id !== store.me.id) user.online = false;
  }
  ui.status = status;
  scheduleRender();
}

/** The tab's title: "(@) " first while a mention that alerted waits to be seen. */
function updateTitle() {
  document.title = `${ui.mentionAlert ? "(@) " : ""}CronChat`;
}

function onVisibilityChange() {
  if (document.visibilityState === "visible" && ui.mentionAlert) {
    ui.mentionAlert = false;
    updateTitle();
  }
  markRead();
}


// ---------------------------------------------------------------- layout

function buildLayout() {
  root.className = "app";
  for (const key of Object.keys(elements)) delete elements[key];
  elements.status = h("span", { class: "status-dot", title: "connection" });
  elements.statusText = h("span", { class: "status-text" });
  elements.meButton = h("button", { class: "me", title: "Edit your profile", onclick: showProfile });
  elements.roomList = h("ul", { class: "room-list", "aria-label": "Rooms" });
  const sidebar = h(
    "aside",
    { class: "sidebar" },
    h("header", { class: "sidebar-head" }, elements.meButton, h("span", { class: "connection" }, elements.status, elements.statusText)),
    h(
      "div",
      { class: "sidebar-actions" },
      h("button", { class: "new-direct", onclick: showNewDirect }, "+ Direct"),
      h("button", { class: "new-group", onclick: showNewGroup }, "+ Group"),
      h("button", { class: "logout subtle", onclick: logout }, "Log out"),
    ),
    elements.roomList,
  );
  elements.roomTitle = h("h2", { class: "room-title" });
  elements.roomSubtitle = h("p", { class: "room-subtitle" });
  elements.roomAvatar = h("span", { class: "room-avatar" });
  elements.messages = h("ol", { class: "messages", "aria-live": "polite" });
  elements.messages.addEventListener("scroll", onScroll);
  elements.typing = h("div", { class: "typing" });
  elements.contextBar = h("div", { class: "context-bar", hidden: true });
  elements.preview = h("div", { class: "attachment-preview", hidden: true });
  elements.mentionPicker = h("ul", { class: "mention-picker", id: "mention-picker", role: "listbox", "aria-label": "Mention someone", hidden: true });
  elements.input = h("textarea", { class: "composer-input", rows: 1, placeholder: "Write a message…", "aria-label": "Message", "aria-controls": "mention-picker", "aria-autocomplete": "list" });
  elements.input.addEventListener("keydown", onComposerKey);
  elements.input.addEventListener("input", onComposerInput);
  elements.input.addEventListener("blur", closePicker);
  elements.reportsButton = h("button", { class: "reports-button subtle", title: "Reports of messages in this room", hidden: true, onclick: () => showReports(ui.roomId) }, "Reports");
  elements.mutedNote = h("div", { class: "muted-note", role: "status", hidden: true });
  elements.roomMenuButton = h("button", { class: "room-menu-button subtle", "aria-label": "Notification settings", "aria-haspopup": "menu", onclick: toggleRoomMenu }, "🔔");
  elements.roomMenu = h("div", { class: "room-menu", role: "menu", "aria-label": "Notification settings", hidden: true });
  elements.roomMenu.addEventListener("keydown", onRoomMenuKey);
  elements.file = h("input", { type: "file", accept: "image/png,image/jpeg,image/gif,image/webp", class: "file-input", hidden: true });
  elements.file.addEventListener("change", () => attach(elements.file.files[0]));
  const composer = h(
    "form",
    { class: "composer" },
    h("button", { type: "button", class: "attach", title: "Send an image", "aria-label": "Send an image", onclick: () => elements.file.click() }, h("img", { src: "/static/attach.svg", alt: "", width: 20, height: 20 })),
    elements.file,
    elements.input,
    h("button", { type: "submit", class: "send primary" }, "Send"),
  );
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
  });
  elements.roomView = h(
    "section",
    { class: "room-view" },
    h(
      "header",
      { class: "room-head" },
      h("button", { class: "back subtle", "aria-label": "Back to rooms", onclick: () => closeRoom() }, "←"),
      elements.roomAvatar,
      h("div", { class: "room-heading" }, elements.roomTitle, elements.roomSubtitle),
      elements.reportsButton,
      h("button", { class: "members-button subtle", onclick: () => showMembers(ui.roomId) }, "Members"),
      elements.roomMenuButton,
      elements.roomMenu,
    ),
    elements.messages,
    elements.typing,
    elements.mentionPicker,
    elements.contextBar,
    elements.preview,
    elements.mutedNote,
    composer,
  );
  elements.empty = h("section", { class: "empty-view" }, h("p", {}, "Pick a room, or start one with + Direct or + Group."));
  elements.toast = h("div", { class: "toast", role: "status", hidden: true });
  elements.overlay = h("div", { class: "overlay", hidden: true });
  elements.overlay.addEventListener("click", (event) => {
    if (event.target === elements.overlay) closeOverlay();
  });
  clear(root).append(sidebar, h("main", { class: "main" }, elements.roomView, elements.empty), elements.toast, elements.overlay);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !elements.overlay.hidden) closeOverlay();
    if (event.key === "Escape" && ui.roomMenuOpen) closeRoomMenu();
  });
  document.addEventListener("mousedown", (event) => {
    if (ui.roomMenuOpen && !elements.roomMenu.contains(event.target) && !elements.roomMenuButton.contains(event.target)) closeRoomMenu();
  });
  document.addEventListener("visibilitychange", onVisibilityChange);
  setInterval(scheduleRender, 1000); // typing indicators expire
}

function render() {
  const me = store.users.get(store.me.id) || store.me;
  clear(elements.meButton).append(avatar(me, "small"), h("span", { class: "me-name" }, me.display_name || me.username));
  elements.status.dataset.status = ui.status;
  elements.statusText.textContent = { online: "Connected", connecting: "Connecting…", offline: "Offline, reconnecting…" }[ui.status];
  renderRoomList();
  if (ui.roomId && !store.rooms.has(ui.roomId)) closeRoom();
  root.classList.toggle("room-open", Boolean(ui.roomId));
  elements.roomView.hidden = !ui.roomId;
  elements.empty.hidden = Boolean(ui.roomId);
  if (ui.roomId) renderRoom();
  renderRoomMenu();
  renderModeration();
}

/** The room header's Reports button (admins and owners, with the open count) and the
 * composer's muted notice; the queue's panel when open. */
function renderModeration() {
  const moderating = Boolean(ui.roomId) && store.moderates(ui.roomId);
  elements.reportsButton.hidden = !moderating;
  if (moderating) {
    if (!store.reports.has(ui.roomId) && !ui.reportsRequested.has(ui.roomId)) {
      ui.reportsRequested.add(ui.roomId);
      store.loadReports(ui.roomId).catch(() => {});
    }
    const open = store.openReports(ui.roomId).length;
    const label = open ? `Reports (${open})` : "Reports";
    if (elements.reportsButton.textContent !== label) elements.reportsButton.textContent = label;
    elements.reportsButton.classList.toggle("has-reports", open > 0);
  }
  renderMutedNote();
  drawReports();
}

function previewText(message) {
  if (!message) return "No messages yet";
  if (message.deleted) return "Message deleted";
  if (store.isBlocked(message.sender_id)) return "Message from a blocked user";
  const sender = message.sender_id === store.me.id ? "You" : store.user(message.sender_id).display_name;
  const body = message.kind === "image" ? `📷 ${message.text || "Photo"}` : message.text || "";
  return `${sender}: ${body}`;
}

function renderRoomList() {
  const items = store.sortedRooms().map((room) => {
    const peer = room.peer ? store.users.get(room.peer.id) || room.peer : null;
    const active = room.id === ui.roomId;
    const muted = isMuted(room);
    const badge = room.unread_count > 0 && !active ? h("span", { class: "badge", "aria-label": `${room.unread_count} unread` }, String(room.unread_count)) : null;
    const mentions = room.unread_mention_count > 0 && !active ? h("span", { class: "mention-badge", "aria-label": `${room.unread_mention_count} unread mentions` }, `@${room.unread_mention_count}`) : null;
    const bellOff = muted ? h("span", { class: "muted-mark", title: mutedText(room), "aria-label": mutedText(room) }, "🔕") : null;
    const face = room.kind === "direct" ? avatar(peer) : avatar({ id: room.id, display_name: room.name, avatar_url: room.avatar_url });
    const dot = peer ? h("span", { class: `presence ${peer.online ? "online" : "offline"}`, title: peer.online ? "online" : "offline" }) : null;
    return h(
      "li",
      {},
      h(
        "button",
        { class: `room-item${active ? " active" : ""}${muted ? " muted" : ""}`, dataset: { roomId: room.id, kind: room.kind }, onclick: () => openRoom(room.id) },
        h("span", { class: "face" }, face, dot),
        h(
          "span",
          { class: "room-lines" },
          h("span", { class: "room-line" }, h("span", { class: "room-name" }, roomName(room)), bellOff, h("span", { class: "room-time" }, formatTime(room.last_message?.created_at))),
          h("span", { class: "room-line" }, h("span", { class: "room-last" }, previewText(room.last_message)), mentions, badge),
        ),
      ),
    );
  });
  if (!items.length) items.push(h("li", { class: "muted empty-rooms" }, "No rooms yet."));
  elements.roomList.replaceChildren(...items);
}

async function logout() {
  try {
    app.realtime?.stop();
    await forgetPushDevice();
    await api.logout();
  } catch {
    /* the session is gone either way */
  }
  location.reload();
}

store.subscribe(scheduleRender);
boot();
