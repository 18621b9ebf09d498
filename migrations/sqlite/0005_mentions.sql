-- Mentions: the message names whom it mentions (JSON {user_ids, room}, NULL for nobody); the
-- mentions table holds one row per mentioned user and one row with user_id '*' for a room
-- mention, so that a room mention costs one row whatever the number of members.
ALTER TABLE messages ADD COLUMN mentions TEXT NULL;
CREATE TABLE mentions (
  message_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  room_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sender_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (message_id, user_id),
  FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
);
-- Mention counts read (room_id, user_id, seq, sender_id) above a member's read marker.
CREATE INDEX mentions_room_user ON mentions (room_id, user_id, seq, sender_id);
-- Where a membership starts (room mentions before it are not the member's), and the member's
-- notification settings.
ALTER TABLE room_members ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE room_members ADD COLUMN notify_level TEXT NOT NULL DEFAULT 'all';
ALTER TABLE room_members ADD COLUMN notify_room_mentions INTEGER NOT NULL DEFAULT 1;
ALTER TABLE room_members ADD COLUMN notify_muted_until INTEGER NULL;
