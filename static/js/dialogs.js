// Dialogs: new direct and group rooms (user search), members (add, remove, leave),
// the profile and avatar, and the full-size image viewer.

import { api, elements, messageOf, scheduleRender, store, toast, ui } from "./context.js";
import { avatar, h } from "./dom.js";
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

export async function showMembers(roomId) {
  const room = store.rooms.get(roomId);
  if (!room) return;
  const list = h("ul", { class: "member-list" });
  const error = h("p", { class: "form-error", role: "alert" });
  const canManage = room.kind === "group" && ["owner", "admin"].includes(room.my_role);
  let members = [];
  const draw = async () => {
    try {
      members = await store.loadMembers(roomId);
    } catch (caught) {
      error.textContent = messageOf(caught);
      return;
    }
    list.replaceChildren(
      ...members.map((member) => {
        const user = store.users.get(member.user.id) || member.user;
        const remove = canManage && user.id !== store.me.id ? h("button", { class: "remove-member subtle", onclick: () => removeMember(user) }, "Remove") : null;
        return h("li", { class: "member" }, h("span", { class: "face" }, avatar(user, "small"), h("span", { class: `presence ${user.online ? "online" : "offline"}` })), h("span", { class: "member-name" }, user.display_name), h("span", { class: "muted role" }, member.role), remove);
      }),
    );
  };
  const removeMember = async (user) => {
    try {
      await api.delete(`/rooms/${roomId}/members/${user.id}`);
      await draw();
    } catch (caught) {
      error.textContent = messageOf(caught);
    }
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
    parts.push(h("h3", {}, "Add people"), search.input, search.results);
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
  );
}
