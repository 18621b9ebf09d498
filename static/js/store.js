// The client's state and how room events fold into it. Per room, `lastSeq` is the highest
// seq with every event up to it applied (protocol §7.1): duplicates are ignored, holes are
// filled from GET /rooms/{id}/events before anything after them is applied.

// The fields of a room that are the member's own: null in room events, kept from what we had.
const MEMBER_FIELDS = ["my_role", "last_read_seq", "unread_count", "unread_mention_count", "notifications", "last_message"];

export class Store {
  constructor(api) {
    this.api = api;
    this.me = null;
    this.rooms = new Map(); // id -> room object (REST shape)
    this.users = new Map(); // id -> user
    this.timelines = new Map(); // room id -> Timeline
    this.lastSeq = new Map(); // room id -> applied seq
    this.held = new Map(); // room id -> Map(seq -> event) waiting for a hole to fill
    this.filling = new Set(); // rooms whose hole is being fetched
    this.receipts = new Map(); // room id -> Map(user id -> seq)
    this.typing = new Map(); // room id -> Map(user id -> expiry ms)
    this.members = new Map(); // room id -> members (GET /rooms/{id}/members), until one joins or leaves
    this.blocked = new Set(); // ids of the users I block (GET /users/me/blocks, the blocks frame)
    this.reports = new Map(); // room id -> Map(report id -> open report), for the rooms I moderate
    this.reportsLoading = new Map(); // room id -> Map(report id -> report) of frames during a load
    this.listeners = new Set();
    this.userRequests = new Map();
  }

  // ---- moderation ----

  async loadBlocks() {
    const answer = await this.api.get("/users/me/blocks");
    for (const user of answer.users) this.rememberUser(user);
    this.setBlocks(answer.users.map((user) => user.id));
  }

  /** Whom I block now: from the `blocks` frame, or after my own PUT/DELETE. */
  setBlocks(userIds) {
    this.blocked = new Set(userIds);
    this.changed({ blocks: true, timeline: true });
  }

  isBlocked(userId) {
    return this.blocked.has(userId);
  }

  /** Admins and owners of a group room see its reports and moderate its members. */
  moderates(roomId) {
    const room = this.rooms.get(roomId);
    return Boolean(room && room.kind === "group" && ["owner", "admin"].includes(room.my_role));
  }

  /** The open reports of a room (GET /rooms/{id}/reports?status=open, every page). */
  async loadReports(roomId) {
    const during = new Map(); // frames that arrive while the pages are read are newer
    this.reportsLoading.set(roomId, during);
    try {
      const open = new Map();
      let cursor = null;
      do {
        const query = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
        const page = await this.api.get(`/rooms/${encodeURIComponent(roomId)}/reports?status=open${query}`);
        for (const report of page.reports) open.set(report.id, report);
        cursor = page.next_cursor;
      } while (cursor);
      for (const report of during.values()) foldReport(open, report);
      this.reports.set(roomId, open);
      this.changed({ reports: roomId });
      return open;
    } finally {
      if (this.reportsLoading.get(roomId) === during) this.reportsLoading.delete(roomId);
    }
  }

  /** A report filed or handled (the `report` frame, or my own PATCH): only open ones stay.
   * Until the room's queue is read, frames only wait for that read. */
  receiveReport(report) {
    this.reportsLoading.get(report.room_id)?.set(report.id, report);
    const open = this.reports.get(report.room_id);
    if (open) foldReport(open, report);
    this.changed({ reports: report.room_id });
  }

  reportsLoaded(roomId) {
    return this.reports.has(roomId);
  }

  openReports(roomId) {
    return [...(this.reports.get(roomId) || new Map()).values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  changed(what = {}) {
    for (const listener of this.listeners) listener(what);
  }

  timeline(roomId) {
    let timeline = this.timelines.get(roomId);
    if (!timeline) {
      timeline = new Timeline();
      this.timelines.set(roomId, timeline);
    }
    return timeline;
  }

  /** Merge a user object; `snapshot` for the users inside member events, whose `online`
   * is always false, so that they do not overwrite the live presence. */
  rememberUser(user, { snapshot = false } = {}) {
    if (!user?.id) return;
    const known = this.users.get(user.id);
    const merged = { ...known, ...user };
    if (snapshot && known && "online" in known) {
      merged.online = known.online;
      merged.last_seen_at = known.last_seen_at;
    }
    this.users.set(user.id, merged);
  }

  /** A user's profile, fetched once when an unknown sender shows up. */
  user(id) {
    const known = this.users.get(id);
    if (known) return known;
    if (!this.userRequests.has(id)) {
      this.userRequests.set(
        id,
        this.api.get(`/users/${encodeURIComponent(id)}`).then(
          (user) => {
            this.rememberUser(user);
            this.changed({ users: true });
          },
          () => {},
        ),
      );
    }
    return { id, display_name: "…" };
  }

  setRoom(room) {
    const known = this.rooms.get(room.id) || {};
    const merged = { ...known };
    for (const [key, value] of Object.entries(room)) {
      // Room objects inside events carry null member fields: keep ours.
      if (value === null && MEMBER_FIELDS.includes(key) && key in known) continue;
      merged[key] = value;
    }
    this.rooms.set(room.id, merged);
    if (room.peer) this.rememberUser(room.peer);
    return merged;
  }

  removeRoom(roomId) {
    this.rooms.delete(roomId);
    this.timelines.delete(roomId);
    this.lastSeq.delete(roomId);
    this.held.delete(roomId);
    this.members.delete(roomId);
    this.changed({ rooms: true, removed: roomId });
  }

  /** Rooms by recent activity. */
  sortedRooms() {
    const activity = (room) => room.last_message?.created_at || room.updated_at || room.created_at || "";
    return [...this.rooms.values()].sort((a, b) => activity(b).localeCompare(activity(a)));
  }

  async loadRooms() {
    let cursor = null;
    do {
      const query = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
      const page = await this.api.get(`/rooms${query}`);
      for (const room of page.rooms) {
        this.setRoom(room);
        if (!this.lastSeq.has(room.id)) this.lastSeq.set(room.id, room.last_seq);
      }
      cursor = page.next_cursor;
    } while (cursor);
    this.changed({ rooms: true });
  }

  /** Refresh counts and last messages (summaries are not replayed after a reconnect). */
  async refreshRooms() {
    let cursor = null;
    do {
      const query = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
      const page = await this.api.get(`/rooms${query}`);
      for (const room of page.rooms) {
        const known = this.rooms.get(room.id);
        if (!known) continue;
        known.unread_count = room.unread_count;
        known.unread_mention_count = room.unread_mention_count;
        known.notifications = room.notifications;
        known.last_read_seq = room.last_read_seq;
        known.last_message = room.last_message;
        if (room.peer) this.rememberUser(room.peer);
      }
      cursor = page.next_cursor;
    } while (cursor);
    this.changed({ rooms: true });
  }

  async loadRoom(roomId, seq) {
    const room = await this.api.get(`/rooms/${encodeURIComponent(roomId)}`);
    this.setRoom(room);
    if (!this.lastSeq.has(roomId)) this.lastSeq.set(roomId, seq ?? room.last_seq);
    this.changed({ rooms: true });
    return room;
  }

  /** The newest messages of a room, the first time it is opened. */
  async loadHistory(roomId) {
    const timeline = this.timeline(roomId);
    if (timeline.loaded || timeline.loading) return;
    timeline.loading = true;
    try {
      const page = await this.api.get(`/rooms/${encodeURIComponent(roomId)}/messages?limit=50`);
      for (const message of page.messages) timeline.upsert(message, { fromRest: true });
      timeline.hasMore = page.has_more;
      timeline.loaded = true;
    } finally {
      timeline.loading = false;
    }
    this.changed({ timeline: roomId });
  }

  /** Older history, when the user scrolls to the top. */
  async loadOlder(roomId) {
    const timeline = this.timeline(roomId);
    if (!timeline.hasMore || timeline.loading) return false;
    const oldest = timeline.oldestSeq();
    if (oldest === null) return false;
    timeline.loading = true;
    try {
      const page = await this.api.get(`/rooms/${encodeURIComponent(roomId)}/messages?before_seq=${oldest}&limit=50`);
      for (const message of page.messages) timeline.upsert(message, { fromRest: true });
      timeline.hasMore = page.has_more;
    } finally {
      timeline.loading = false;
    }
    this.changed({ timeline: roomId, older: true });
    return true;
  }

  async loadMembers(roomId) {
    const answer = await this.api.get(`/rooms/${encodeURIComponent(roomId)}/members`);
    for (const member of answer.members) this.rememberUser(member.user);
    this.members.set(roomId, answer.members);
    const mine = answer.members.find((member) => member.user.id === this.me?.id);
    const room = this.rooms.get(roomId);
    if (mine && room) room.muted_until = mine.muted_until || null;
    return answer.members;
  }

  /** The members of a room, fetched once and kept until someone joins or leaves. */
  async roomMembers(roomId) {
    return this.members.get(roomId) || this.loadMembers(roomId);
  }

  // ---- events, in seq order per room ----

  /** An event from the socket or from /events: apply in order, hold after a hole. */
  receiveEvent(event) {
    const roomId = event.room_id;
    if (!this.lastSeq.has(roomId)) {
      // A room we did not know: we were just added. Start from the seq before this event.
      this.lastSeq.set(roomId, event.seq - 1);
      this.loadRoom(roomId, event.seq - 1).catch(() => {});
    }
    const last = this.lastSeq.get(roomId);
    if (event.seq <= last) return; // seen already
    if (event.seq > last + 1) {
      if (!this.held.has(roomId)) this.held.set(roomId, new Map());
      this.held.get(roomId).set(event.seq, event);
      this.fillHole(roomId);
      return;
    }
    this.apply(event);
    this.lastSeq.set(roomId, event.seq);
    this.drainHeld(roomId);
  }

  drainHeld(roomId) {
    const held = this.held.get(roomId);
    while (held?.size) {
      const next = held.get(this.lastSeq.get(roomId) + 1);
      if (!next) {
        for (const seq of held.keys()) if (seq <= this.lastSeq.get(roomId)) held.delete(seq);
        break;
      }
      held.delete(next.seq);
      this.apply(next);
      this.lastSeq.set(roomId, next.seq);
    }
  }

  /** Page GET /rooms/{id}/events from lastSeq until nothing more (also after resync_required). */
  async fillHole(roomId) {
    if (this.filling.has(roomId)) return;
    this.filling.add(roomId);
    try {
      for (;;) {
        const after = this.lastSeq.get(roomId);
        if (after === undefined) return;
        const page = await this.api.get(`/rooms/${encodeURIComponent(roomId)}/events?after_seq=${after}&limit=500`);
        for (const event of page.events) {
          if (event.seq === this.lastSeq.get(roomId) + 1) {
            this.apply(event);
            this.lastSeq.set(roomId, event.seq);
          }
        }
        this.drainHeld(roomId);
        if (!page.has_more || !page.events.length) break;
      }
    } catch (error) {
      if (error.status === 404) this.removeRoom(roomId);
    } finally {
      this.filling.delete(roomId);
    }
  }

  apply(event) {
    const roomId = event.room_id;
    const room = this.rooms.get(roomId);
    const timeline = this.timeline(roomId);
    const data = event.data || {};
    switch (event.type) {
      case "message.created":
      case "message.edited":
      case "message.deleted":
        timeline.upsert(data);
        if (room && event.type === "message.created") {
          room.last_message = data;
        } else if (room?.last_message?.id === data.id) {
          room.last_message = { ...room.last_message, ...data };
        }
        break;
      case "reaction.added":
      case "reaction.removed":
        timeline.react(data, event.type === "reaction.added", data.user_id === this.me?.id);
        break;
      case "member.joined":
      case "member.role_changed":
        this.rememberUser(data.user, { snapshot: true });
        this.members.delete(roomId);
        if (room) {
          if (event.type === "member.joined") room.member_count = (room.member_count || 0) + 1;
          if (data.user.id === this.me?.id) room.my_role = data.role;
        }
        break;
      case "member.left":
      case "member.banned":
        if (data.user?.id === this.me?.id) {
          this.removeRoom(roomId);
          return;
        }
        this.members.delete(roomId);
        if (room) room.member_count = Math.max(0, (room.member_count || 1) - 1);
        break;
      case "member.unbanned":
        this.members.delete(roomId);
        break;
      case "member.muted":
        this.rememberUser(data.user, { snapshot: true });
        this.members.delete(roomId);
        if (room && data.user?.id === this.me?.id) room.muted_until = data.muted_until;
        break;
      case "room.updated":
        this.setRoom(data);
        break;
      case "room.deleted":
        this.removeRoom(roomId);
        return;
      default:
        break;
    }
    this.changed({ timeline: roomId, rooms: true, event });
  }

  summary(summary) {
    const room = this.rooms.get(summary.id);
    if (!room) return;
    room.last_message = summary.last_message;
    room.unread_count = summary.unread_count;
    room.last_read_seq = summary.last_read_seq;
    if (summary.unread_mention_count !== undefined && summary.unread_mention_count !== null) room.unread_mention_count = summary.unread_mention_count;
    if (summary.notifications) room.notifications = summary.notifications;
    this.changed({ rooms: true });
  }

  /** After PUT /rooms/{id}/notifications: the answer is the room's new settings. */
  setNotifications(roomId, notifications) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.notifications = notifications;
    this.changed({ rooms: true });
  }

  receipt({ room_id, user_id, seq }) {
    if (!this.receipts.has(room_id)) this.receipts.set(room_id, new Map());
    const receipts = this.receipts.get(room_id);
    receipts.set(user_id, Math.max(seq, receipts.get(user_id) || 0));
    this.changed({ timeline: room_id, receipts: true });
  }

  typingFrom({ room_id, user_id }) {
    if (!this.typing.has(room_id)) this.typing.set(room_id, new Map());
    this.typing.get(room_id).set(user_id, Date.now() + 5000);
    this.changed({ typing: room_id });
  }

  typists(roomId) {
    const now = Date.now();
    return [...(this.typing.get(roomId) || new Map())].filter(([, until]) => until > now).map(([id]) => id);
  }

  presence({ user_id, online, last_seen_at }) {
    this.rememberUser({ ...this.users.get(user_id), id: user_id, online, last_seen_at });
    this.changed({ rooms: true, presence: user_id });
  }
}

function foldReport(open, report) {
  if (report.status === "open") open.set(report.id, report);
  else open.delete(report.id);
}

/** The messages of one room, by id and in seq order, plus the sends still in flight. */
export class Timeline {
  constructor() {
    this.byId = new Map();
    this.pending = new Map(); // client_msg_id -> {client_msg_id, text, status, ...}
    this.hasMore = false;
    this.loaded = false;
    this.loading = false;
  }

  upsert(message, { fromRest = false } = {}) {
    const known = this.byId.get(message.id);
    if (known && !fromRest) {
      // Events always say me=false: keep our own reactions.
      const mine = new Set(known.reactions.filter((r) => r.me).map((r) => r.emoji));
      message = { ...message, reactions: message.reactions.map((r) => ({ ...r, me: mine.has(r.emoji) })) };
    }
    if (known && fromRest) return; // what events told us is at least as new
    this.byId.set(message.id, message);
  }

  react({ message_id, emoji }, added, isMine) {
    const message = this.byId.get(message_id);
    if (!message) return;
    const reactions = message.reactions.map((r) => ({ ...r }));
    let reaction = reactions.find((r) => r.emoji === emoji);
    if (added) {
      if (!reaction) {
        reaction = { emoji, count: 0, me: false };
        reactions.push(reaction);
      }
      if (!(isMine && reaction.me)) reaction.count += 1;
      if (isMine) reaction.me = true;
    } else if (reaction) {
      if (!(isMine && !reaction.me)) reaction.count -= 1;
      if (isMine) reaction.me = false;
    }
    message.reactions = reactions.filter((r) => r.count > 0);
  }

  messages() {
    return [...this.byId.values()].sort((a, b) => a.seq - b.seq);
  }

  oldestSeq() {
    let oldest = null;
    for (const message of this.byId.values()) if (oldest === null || message.seq < oldest) oldest = message.seq;
    return oldest;
  }

  newestSeq() {
    let newest = 0;
    for (const message of this.byId.values()) newest = Math.max(newest, message.seq);
    return newest;
  }
}
