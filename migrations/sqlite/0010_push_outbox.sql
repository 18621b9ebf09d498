-- Push delivery. ``push_jobs``: each new message, written in the send's own transaction,
-- waiting to be planned (who is pushed is decided off the send's path). ``push_outbox``: the
-- pushes owed, at most one per pusher and room (a newer message replaces the pending one),
-- each due at ``due_at`` and claimed by a sender until ``claimed_until`` (epoch ms);
-- ``version`` grows with every replacement, so that a sender finishing an older version
-- leaves the newer one owed. ``push_sent``: the pushers sent a message push of a room since
-- the member last read it, who are owed a ``read`` push.
CREATE TABLE push_jobs (
  room_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (room_id, seq)
);

CREATE TABLE push_outbox (
  pusher_id TEXT NOT NULL,
  room_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  push TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  claimed_until INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (pusher_id, room_id),
  FOREIGN KEY (pusher_id) REFERENCES pushers (id) ON DELETE CASCADE
);
CREATE INDEX push_outbox_due ON push_outbox (due_at);
CREATE INDEX push_outbox_member ON push_outbox (user_id, room_id);

CREATE TABLE push_sent (
  pusher_id TEXT NOT NULL,
  room_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  PRIMARY KEY (pusher_id, room_id),
  FOREIGN KEY (pusher_id) REFERENCES pushers (id) ON DELETE CASCADE
);
CREATE INDEX push_sent_member ON push_sent (user_id, room_id);
