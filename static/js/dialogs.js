// Dialogs: new direct and group rooms (user search), members (add, remove, leave; for
// admins and owners ban and mute; block and unblock), the profile and avatar (with this
// device's notifications, the download of my data, whom I block, and deleting my account),
// and the full-size image viewer.

import { api, app, elements, messageOf, scheduleRender, store, toast, ui } from "./context.js";
import { avatar, h } from "./dom.js";
import { blockUser, formatUntil, unblockUser } from "./moderation.js";
import { disablePush, enablePush, forgetPushDevice, isPushEnabled, isPushSupported } from "./push.js";
import { closeRoom, openRoom } from "./room.js";

export function openOverlay(title, ...content) {
  const panel = h("div", { class: "panel", role: "dialog", "aria-modal": "true", "aria-label": title }, h("header", { class: "panel-head" }, h("h2", {}, title), h("button", { class: "subtle close", "aria-label": "Close", onclick: closeOverlay }, "✕")), ...content);
  elements.overlay.replaceChildren(panel);
  elements.overlay.hidden = false;
  panel.querySelector("input")?.focus();
  return panel;
}

export function closeOverlay() {
  elements.overlay.hidden = true;
  elements.overlay.replaceChildren();
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(question, label) {
  return new Promise((resolve) => {
    const answer = (value) => {
      closeOverlay();
      resolve(value);
    };
    const yes = h("button", { class: "danger confirm-yes", onclick: () => answer(true) }, label);
    const no = h("button", { class: "confirm-no", onclick: () => answer(false) }, "Cancel");
    openOverlay("Are you sure?", h("p", {}, question), h("div", { class: "confirm-buttons" }, no, yes));
    yes.focus();
  });
}

export function showImage(url) {
  const panel = openOverlay("Image", h("img", { class: "full-image", src: url, alt: "full size image" }));
  panel.classList.add("image-panel");
}

/** A search box over GET /users?q=, calling pick(user) on a result. */
function userSearch(pick, exclude = () => false) {
  const input = h("input", { type: "search", class: "user-search", placeholder: "Search people by name", "aria-label": "Search people" });
  const results = h("ul", { class: "user-results" });
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      if (!q) return results.replaceChildren();
      try {
        const answer = await api.get(`/users?q=${encodeURIComponent(q)}&limit=10`);
        const users = answer.users.filter((user) => user.id !== store.me.id && !exclude(user));
        users.forEach((user) => store.rememberUser(user));
        results.replaceChildren(
          ...(users.length
            ? users.map((user) =>
                h("li", {}, h("button", { class: "user-result", dataset: { username: user.username }, onclick: () => pick(user) }, avatar(user, "small"), h("span", {}, user.display_name), h("span", { class: "muted" }, `@${user.username}`))),
              )
            : [h("li", { class: "muted" }, "Nobody found.")]),
        );
      } catch (error) {
        results.replaceChildren(h("li", { class: "form-error" }, messageOf(error)));
      }
    }, 150);
  });
  return { input, results };
}

export function showNewDirect() {
  const search = userSearch(async (user) => {
    try {
      const room = await api.post("/rooms/direct", { user_id: user.id });
      store.setRoom(room);
      if (!store.lastSeq.has(room.id)) store.lastSeq.set(room.id, room.last_seq);
      closeOverlay();
      openRoom(room.id);
    } catch (error) {
      toast(messageOf(error));
    }
  });
  openOverlay("New direct chat", search.input, search.results);
}

export function showNewGroup() {
  const chosen = new Map();
  const name = h("input", { class: "group-name", placeholder: "Group name", maxlength: 100, "aria-label": "Group name" });
  const topic = h("input", { class: "group-topic", placeholder: "Topic (optional)", "aria-label": "Topic" });
  const chips = h("div", { class: "chips" });
  const error = h("p", { class: "form-error", role: "alert" });
  const drawChips = () =>
    chips.replaceChildren(
      ...[...chosen.values()].map((user) => h("button", { class: "chip", title: "Remove", onclick: () => (chosen.delete(user.id), drawChips()) }, `${user.display_name} ✕`)),
    );
  const search = userSearch((user) => {
    chosen.set(user.id, user);
    drawChips();
  });
  const create = h("button", { class: "primary create-group" }, "Create group");
  create.addEventListener("click", async () => {
    error.textContent = "";
    try {
      const room = await api.post("/rooms", { name: name.value.trim(), topic: topic.value.trim() || undefined, member_ids: [...chosen.keys()] });
      store.setRoom(room);
      if (!store.lastSeq.has(room.id)) store.lastSeq.set(room.id, room.last_seq);
      closeOverlay();
      openRoom(room.id);
    } catch (caught) {
      error.textContent = messageOf(caught);
    }
  });
  openOverlay("New group", name, topic, h("h3", {}, "Members"), chips, search.input, search.results, error, create);
}

const RANK = { member: 0, admin: 1, owner: 2 };
const HOUR_MS = 3600 * 1000;

export async function showMembers(roomId) {
  const room = store.rooms.get(roomId);
  if (!room) return;
  const list = h("ul", { class: "member-list" });
  const bannedList = h("ul", { class: "ban-list member-list" });
  const bannedHeading = h("h3", { hidden: true }, "Banned");
  const error = h("p", { class: "form-error", role: "alert" });
  const canManage = room.kind === "group" && ["owner", "admin"].includes(room.my_role);
  // Admins moderate members; the owner moderates admins too; nobody the owner.
  const canModerate = (member) => canManage && member.user.id !== store.me.id && RANK[member.role] < RANK[room.my_role];
  let members = [];
  const draw = async () => {
    try {
      members = await store.loadMembers(roomId);
    } catch (caught) {
      error.textContent = messageOf(caught);
      return;
    }
    list.replaceChildren(...members.map(memberItem));
    if (canManage) await drawBans();
  };
  const memberItem = (member) => {
    const user = store.users.get(member.user.id) || member.user;
    const mutedUntil = member.muted_until && Date.parse(member.muted_until) > Date.now() ? member.muted_until : null;
    const state = mutedUntil ? h("span", { class: "member-state muted-state", title: member.muted_until }, `muted until ${formatUntil(mutedUntil)}`) : null;
    const buttons = h("span", { class: "member-actions" });
    if (user.id !== store.me.id) {
      if (store.isBlocked(user.id)) buttons.append(h("button", { class: "unblock-user subtle", onclick: () => unblockUser(user.id, { ask: false }).then(draw) }, "Unblock"));
      else if (!user.deleted) buttons.append(h("button", { class: "block-user subtle", onclick: () => blockUser(user.id).then(draw) }, "Block"));
    }
    if (canModerate(member)) {
      if (mutedUntil) buttons.append(h("button", { class: "unmute-member subtle", onclick: () => mute(user, null) }, "Unmute"));
      buttons.append(
        h("button", { class: "mute-member subtle", dataset: { hours: "1" }, onclick: () => mute(user, 1) }, "Mute 1 h"),
        h("button", { class: "mute-member subtle", dataset: { hours: "24" }, onclick: () => mute(user, 24) }, "Mute 24 h"),
        h("button", { class: "ban-member subtle", onclick: () => askBan(item, user) }, "Ban"),
      );
    }
    if (canManage && user.id !== store.me.id) buttons.append(h("button", { class: "remove-member subtle", onclick: () => removeMember(user) }, "Remove"));
    const item = h(
      "li",
      { class: `member${mutedUntil ? " is-muted" : ""}`, dataset: { userId: user.id } },
      h("span", { class: "face" }, avatar(user, "small"), h("span", { class: `presence ${user.online ? "online" : "offline"}` })),
      h("span", { class: "member-name" }, user.display_name),
      h("span", { class: "muted role" }, member.role),
      state,
      buttons,
    );
    return item;
  };
  const drawBans = async () => {
    let bans = [];
    try {
      bans = (await api.get(`/rooms/${roomId}/bans`)).bans || [];
    } catch (caught) {
      if (caught.status !== 404) error.textContent = messageOf(caught);
    }
    bannedHeading.hidden = !bans.length;
    bannedList.replaceChildren(
      ...bans.map((ban) => {
        const user = store.users.get(ban.user.id) || ban.user;
        const until = ban.expires_at ? `until ${formatUntil(ban.expires_at)}` : "banned";
        return h(
          "li",
          { class: "member banned", dataset: { userId: user.id } },
          avatar(user, "small"),
          h("span", { class: "member-name" }, user.display_name),
          h("span", { class: "member-state ban-state", title: ban.reason || "" }, ban.reason ? `${until}: ${ban.reason}` : until),
          h("button", { class: "unban-member subtle", onclick: () => unban(user) }, "Unban"),
        );
      }),
    );
  };
  const act = async (work) => {
    error.textContent = "";
    try {
      await work();
      await draw();
    } catch (caught) {
      error.textContent = messageOf(caught);
    }
  };
  const removeMember = (user) => act(() => api.delete(`/rooms/${roomId}/members/${user.id}`));
  const mute = (user, hours) => act(() => api.patch(`/rooms/${roomId}/members/${user.id}`, { muted_until: hours ? new Date(Date.now() + hours * HOUR_MS).toISOString() : null }));
  const unban = (user) => act(() => api.delete(`/rooms/${roomId}/bans/${user.id}`));
  /** The ban's optional reason, asked for in the member's own row. */
  const askBan = (item, user) => {
    if (item.querySelector(".ban-form")) return;
    const reason = h("input", { class: "ban-reason", maxlength: 500, placeholder: "Reason (optional)", "aria-label": "Reason of the ban" });
    const confirm = h("button", { class: "danger confirm-ban" }, `Ban ${user.display_name}`);
    const cancel = h("button", { class: "subtle" }, "Cancel");
    const form = h("div", { class: "ban-form" }, reason, cancel, confirm);
    cancel.addEventListener("click", () => form.remove());
    confirm.addEventListener("click", () => {
      const body = { user_id: user.id };
      if (reason.value.trim()) body.reason = reason.value.trim();
      act(() => api.post(`/rooms/${roomId}/bans`, body));
    });
    item.append(form);
    reason.focus();
  };
  const parts = [list];
  if (canManage) {
    const search = userSearch(
      async (user) => {
        try {
          await api.post(`/rooms/${roomId}/members`, { user_id: user.id });
          search.input.value = "";
          search.results.replaceChildren();
          await draw();
        } catch (caught) {
          error.textContent = messageOf(caught);
        }
      },
      (user) => members.some((member) => member.user.id === user.id),
    );
    parts.push(bannedHeading, bannedList, h("h3", {}, "Add people"), search.input, search.results);
  }
  parts.push(error);
  if (room.kind === "group") {
    parts.push(
      h(
        "button",
        {
          class: "danger leave-room",
          onclick: async () => {
            if (!(await confirmAction("Leave this room?", "Leave"))) return;
            try {
              await api.delete(`/rooms/${roomId}/members/${store.me.id}`);
              closeOverlay();
              store.removeRoom(roomId);
              closeRoom();
            } catch (caught) {
              error.textContent = messageOf(caught);
            }
          },
        },
        "Leave room",
      ),
    );
  }
  openOverlay(room.kind === "group" ? `Members of ${room.name}` : "Members", ...parts);
  await draw();
}

export function showProfile() {
  const me = store.users.get(store.me.id) || store.me;
  const displayName = h("input", { class: "profile-name", value: me.display_name || "", maxlength: 64 });
  const bio = h("textarea", { class: "profile-bio", rows: 3, maxlength: 500 });
  bio.value = me.bio || "";
  const face = h("div", { class: "profile-avatar" }, avatar(me, "large"));
  const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/gif,image/webp", class: "avatar-file" });
  const error = h("p", { class: "form-error", role: "alert" });
  const saved = h("p", { class: "muted", role: "status" });
  const updated = (user) => {
    store.me = { ...store.me, ...user };
    store.rememberUser(store.me);
    face.replaceChildren(avatar(store.me, "large"));
    ui.messageNodes.clear();
    scheduleRender();
  };
  file.addEventListener("change", async () => {
    if (!file.files[0]) return;
    error.textContent = "";
    try {
      updated(await api.upload("PUT", "/users/me/avatar", file.files[0]));
      saved.textContent = "Avatar updated.";
    } catch (caught) {
      error.textContent = messageOf(caught);
    }
  });
  const removeAvatar = h("button", { class: "subtle" }, "Remove avatar");
  removeAvatar.addEventListener("click", async () => {
    try {
      await api.delete("/users/me/avatar");
      updated({ avatar_url: null });
    } catch (caught) {
      error.textContent = messageOf(caught);
    }
  });
  const save = h("button", { class: "primary save-profile" }, "Save");
  save.addEventListener("click", async () => {
    error.textContent = "";
    try {
      updated(await api.patch("/users/me", { display_name: displayName.value.trim(), bio: bio.value }));
      saved.textContent = "Saved.";
    } catch (caught) {
      error.textContent = messageOf(caught);
    }
  });
  openOverlay(
    "Your profile",
    face,
    h("label", { class: "field" }, "Avatar", file),
    removeAvatar,
    h("label", { class: "field" }, "Display name", displayName),
    h("label", { class: "field" }, "Bio", bio),
    h("p", { class: "muted" }, `@${me.username}`),
    error,
    saved,
    save,
    notificationsSection(),
    blockedSection(),
    exportSection(),
    deleteSection(),
  );
}

/** "Notifications on this device": Web Push to this browser (push.js), shown as it is now
 * (this browser's subscription among my push devices), with what went wrong when it fails. */
function notificationsSection() {
  const toggle = h("input", { type: "checkbox", class: "push-toggle", disabled: true });
  const status = h("p", { class: "muted push-status", role: "status" });
  const error = h("p", { class: "form-error push-error", role: "alert" });
  const section = h("section", { class: "profile-section notifications-device", dataset: { state: "loading" } }, h("h3", {}, "Notifications"), h("label", { class: "checkbox" }, toggle, "Notifications on this device"), status, error);
  if (!isPushSupported()) {
    status.textContent = "This browser cannot receive push notifications.";
    return section;
  }
  const show = (enabled) => {
    toggle.checked = enabled;
    toggle.disabled = false;
    section.dataset.state = enabled ? "on" : "off";
    status.textContent = enabled ? "New messages are pushed here while CronChat is closed." : "";
  };
  toggle.addEventListener("change", async () => {
    const wanted = toggle.checked;
    toggle.disabled = true;
    error.textContent = "";
    status.textContent = wanted ? "Turning notifications on…" : "Turning notifications off…";
    try {
      await (wanted ? enablePush() : disablePush());
      show(wanted);
    } catch (caught) {
      show(!wanted);
      error.textContent = messageOf(caught);
    }
  });
  isPushEnabled().then(show, (caught) => {
    show(false);
    error.textContent = messageOf(caught);
  });
  return section;
}

/** Whom I block, each with Unblock. */
function blockedSection() {
  const list = h("ul", { class: "blocked-list member-list" });
  const draw = () => {
    const ids = [...store.blocked];
    list.replaceChildren(
      ...(ids.length
        ? ids.map((id) => {
            const user = store.user(id);
            return h("li", { class: "member", dataset: { userId: id } }, avatar(user, "small"), h("span", { class: "member-name" }, user.display_name), h("button", { class: "unblock-user subtle", onclick: () => unblockUser(id).then(draw) }, "Unblock"));
          })
        : [h("li", { class: "muted" }, "You block nobody.")]),
    );
  };
  draw();
  return h("section", { class: "profile-section blocked-people" }, h("h3", {}, "People you block"), list);
}

const EXPORT_POLL_MS = 1500;
const EXPORT_KEY = "cronchat.export"; // {user_id, id}: the last export asked for, shown again on reopening

/** POST /users/me/export, then poll its status until the zip's link is there. An export
 * can be asked for once a day, so the last one is remembered and shown again. */
function exportSection() {
  const status = h("p", { class: "muted export-status", role: "status" });
  const button = h("button", { class: "export-data" }, "Download my data");
  const follow = async (start, { remembered = false } = {}) => {
    button.disabled = true;
    status.textContent = "Preparing your data…";
    try {
      let exported = await start();
      localStorage.setItem(EXPORT_KEY, JSON.stringify({ user_id: store.me.id, id: exported.id }));
      while (exported.status === "pending") {
        await new Promise((resolve) => setTimeout(resolve, EXPORT_POLL_MS));
        if (!status.isConnected) return; // the dialog was closed
        exported = await api.get(`/users/me/exports/${encodeURIComponent(exported.id)}`);
      }
      if (exported.status === "ready" && exported.url) {
        const size = exported.size ? ` (${Math.max(1, Math.round(exported.size / 1024))} KiB)` : "";
        status.replaceChildren(h("a", { class: "export-link", href: exported.url, download: "cronchat-export.zip", rel: "noopener noreferrer" }, `Download the zip${size}`), exported.expires_at ? ` · the link works until ${formatUntil(exported.expires_at)}` : "");
      } else {
        status.textContent = exported.status === "ready" ? "That download has expired." : "The export failed. Please try again later.";
        button.disabled = false;
      }
    } catch (caught) {
      // A remembered export that is gone says nothing: the button is there.
      status.textContent = remembered ? "" : messageOf(caught);
      if (remembered) localStorage.removeItem(EXPORT_KEY);
      button.disabled = false;
    }
  };
  button.addEventListener("click", () => follow(() => api.post("/users/me/export")));
  let last = null;
  try {
    last = JSON.parse(localStorage.getItem(EXPORT_KEY) || "null");
  } catch {
    last = null;
  }
  if (last?.user_id === store.me.id && last.id) follow(() => api.get(`/users/me/exports/${encodeURIComponent(last.id)}`), { remembered: true });
  return h("section", { class: "profile-section" }, h("h3", {}, "Your data"), button, status);
}

/** DELETE /users/me {password, erase_messages}: asks for the password, then logs out. */
function deleteSection() {
  const password = h("input", { type: "password", class: "delete-password", autocomplete: "current-password", "aria-label": "Your password", placeholder: "Your password" });
  const erase = h("input", { type: "checkbox", class: "delete-erase" });
  const error = h("p", { class: "form-error", role: "alert" });
  const confirm = h("button", { class: "danger confirm-delete-account" }, "Delete my account for good");
  const form = h(
    "div",
    { class: "delete-form", hidden: true },
    h("p", {}, "Your profile, rooms you are alone in, your uploads and settings go, and you are logged out everywhere. This cannot be undone."),
    h("label", { class: "field" }, "Password", password),
    h("label", { class: "checkbox" }, erase, "Also erase my messages"),
    error,
    confirm,
  );
  const open = h("button", { class: "danger delete-account" }, "Delete my account");
  open.addEventListener("click", () => {
    form.hidden = false;
    open.hidden = true;
    password.focus();
  });
  confirm.addEventListener("click", async () => {
    error.textContent = "";
    if (!password.value) {
      error.textContent = "Enter your password.";
      return;
    }
    confirm.disabled = true;
    try {
      await api.request("DELETE", "/users/me", { password: password.value, erase_messages: erase.checked }, { retry: false });
      app.realtime?.stop();
      api.clearSession();
      localStorage.removeItem(EXPORT_KEY);
      await forgetPushDevice();
      location.reload();
    } catch (caught) {
      error.textContent = caught.code === "invalid_credentials" ? "That password is not right." : messageOf(caught);
      confirm.disabled = false;
    }
  });
  return h("section", { class: "profile-section" }, h("h3", {}, "Delete my account"), open, form);
}
