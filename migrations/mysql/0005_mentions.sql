-- Mentions: the message names whom it mentions (JSON {user_ids, room}, NULL for nobody); the
-- mentions table holds one row per mentioned user and one row with user_id '*' for a room
-- mention, so that a room mention costs one row whatever the number of members.
ALTER TABLE messages ADD COLUMN mentions TEXT NULL;
CREATE TABLE mentions (
  message_id VARCHAR(26) NOT NULL,
  user_id VARCHAR(26) NOT NULL,
  room_id VARCHAR(26) NOT NULL,
  seq BIGINT NOT NULL,
  sender_id VARCHAR(26) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (message_id, user_id),
  -- Mention counts read (room_id, user_id, seq, sender_id) above a member's read marker.
  KEY mentions_room_user (room_id, user_id, seq, sender_id),
  CONSTRAINT mentions_room_fk FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Where a membership starts (room mentions before it are not the member's), and the member's
-- notification settings.
ALTER TABLE room_members ADD COLUMN joined_seq BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN notify_level VARCHAR(8) NOT NULL DEFAULT 'all',
  ADD COLUMN notify_room_mentions TINYINT NOT NULL DEFAULT 1,
  ADD COLUMN notify_muted_until BIGINT NULL;
