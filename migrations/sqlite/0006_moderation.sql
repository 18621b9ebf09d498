-- Moderation and the account lifecycle: blocks, bans, timed mutes, reports, the audit log,
-- deleted accounts and exports.
CREATE TABLE blocks (
  user_id TEXT NOT NULL,
  blocked_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, blocked_id),
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  FOREIGN KEY (blocked_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX blocks_blocked ON blocks (blocked_id, user_id);
CREATE TABLE bans (
  room_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  banned_by TEXT NULL,
  reason TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  expires_at INTEGER NULL,
  PRIMARY KEY (room_id, user_id),
  FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
);
-- A timed mute of a member by the room's admins (not their own notification mute).
ALTER TABLE room_members ADD COLUMN muted_until INTEGER NULL;
CREATE TABLE reports (
  id TEXT NOT NULL PRIMARY KEY,
  room_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  reporter_id TEXT NULL,
  reason TEXT NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  snapshot TEXT NOT NULL,
  snapshot_media_id TEXT NULL,
  created_at INTEGER NOT NULL,
  handled_by TEXT NULL,
  handled_at INTEGER NULL,
  note TEXT NULL,
  FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX reports_reporter ON reports (message_id, reporter_id);
CREATE INDEX reports_room ON reports (room_id, status, created_at);
CREATE INDEX reports_status ON reports (status, created_at);
-- Append-only: rows are inserted in the transaction of the act they record, never changed.
CREATE TABLE audit_log (
  id TEXT NOT NULL PRIMARY KEY,
  at INTEGER NOT NULL,
  actor_id TEXT NULL,
  action TEXT NOT NULL,
  room_id TEXT NULL,
  target_user_id TEXT NULL,
  message_id TEXT NULL,
  data TEXT NOT NULL
);
CREATE INDEX audit_log_room ON audit_log (room_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_target ON audit_log (target_user_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
ALTER TABLE users ADD COLUMN deleted_at INTEGER NULL;
CREATE TABLE exports (
  id TEXT NOT NULL PRIMARY KEY,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL,
  storage_key TEXT NULL,
  size INTEGER NULL,
  created_at INTEGER NOT NULL,
  ready_at INTEGER NULL,
  expires_at INTEGER NULL
);
CREATE INDEX exports_user ON exports (user_id, created_at);
