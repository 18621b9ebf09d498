-- Moderation and the account lifecycle: blocks, bans, timed mutes, reports, the audit log,
-- deleted accounts and exports.
CREATE TABLE blocks (
  user_id VARCHAR(26) NOT NULL,
  blocked_id VARCHAR(26) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, blocked_id),
  KEY blocks_blocked (blocked_id, user_id),
  CONSTRAINT blocks_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT blocks_blocked_fk FOREIGN KEY (blocked_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE bans (
  room_id VARCHAR(26) NOT NULL,
  user_id VARCHAR(26) NOT NULL,
  banned_by VARCHAR(26) NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NULL,
  PRIMARY KEY (room_id, user_id),
  CONSTRAINT bans_room_fk FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- A timed mute of a member by the room's admins (not their own notification mute).
ALTER TABLE room_members ADD COLUMN muted_until BIGINT NULL;
CREATE TABLE reports (
  id VARCHAR(26) NOT NULL PRIMARY KEY,
  room_id VARCHAR(26) NOT NULL,
  message_id VARCHAR(26) NOT NULL,
  reporter_id VARCHAR(26) NULL,
  reason VARCHAR(16) NOT NULL,
  comment TEXT NOT NULL,
  status VARCHAR(16) NOT NULL,
  snapshot MEDIUMTEXT NOT NULL,
  snapshot_media_id VARCHAR(26) NULL,
  created_at BIGINT NOT NULL,
  handled_by VARCHAR(26) NULL,
  handled_at BIGINT NULL,
  note TEXT NULL,
  UNIQUE KEY reports_reporter (message_id, reporter_id),
  KEY reports_room (room_id, status, created_at),
  KEY reports_status (status, created_at),
  CONSTRAINT reports_room_fk FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Append-only: rows are inserted in the transaction of the act they record, never changed.
CREATE TABLE audit_log (
  id VARCHAR(26) NOT NULL PRIMARY KEY,
  at BIGINT NOT NULL,
  actor_id VARCHAR(26) NULL,
  action VARCHAR(32) NOT NULL,
  room_id VARCHAR(26) NULL,
  target_user_id VARCHAR(26) NULL,
  message_id VARCHAR(26) NULL,
  data MEDIUMTEXT NOT NULL,
  KEY audit_log_room (room_id, id),
  KEY audit_log_actor (actor_id, id),
  KEY audit_log_target (target_user_id, id),
  KEY audit_log_action (action, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
ALTER TABLE users ADD COLUMN deleted_at BIGINT NULL;
CREATE TABLE exports (
  id VARCHAR(26) NOT NULL PRIMARY KEY,
  user_id VARCHAR(26) NOT NULL,
  status VARCHAR(16) NOT NULL,
  storage_key VARCHAR(255) NULL,
  size BIGINT NULL,
  created_at BIGINT NOT NULL,
  ready_at BIGINT NULL,
  expires_at BIGINT NULL,
  KEY exports_user (user_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
