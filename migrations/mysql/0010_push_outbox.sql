-- Push delivery. ``push_jobs``: each new message, written in the send's own transaction,
-- waiting to be planned (who is pushed is decided off the send's path). ``push_outbox``: the
-- pushes owed, at most one per pusher and room (a newer message replaces the pending one),
-- each due at ``due_at`` and claimed by a sender until ``claimed_until`` (epoch ms);
-- ``version`` grows with every replacement, so that a sender finishing an older version
-- leaves the newer one owed. ``push_sent``: the pushers sent a message push of a room since
-- the member last read it, who are owed a ``read`` push.
CREATE TABLE push_jobs (
  room_id VARCHAR(26) NOT NULL,
  seq BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (room_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE push_outbox (
  pusher_id VARCHAR(26) NOT NULL,
  room_id VARCHAR(26) NOT NULL,
  user_id VARCHAR(26) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  push TEXT NOT NULL,
  version BIGINT NOT NULL DEFAULT 1,
  attempts INT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  due_at BIGINT NOT NULL,
  claimed_until BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (pusher_id, room_id),
  KEY push_outbox_due (due_at),
  KEY push_outbox_member (user_id, room_id),
  CONSTRAINT push_outbox_pusher_fk FOREIGN KEY (pusher_id) REFERENCES pushers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE push_sent (
  pusher_id VARCHAR(26) NOT NULL,
  room_id VARCHAR(26) NOT NULL,
  user_id VARCHAR(26) NOT NULL,
  PRIMARY KEY (pusher_id, room_id),
  KEY push_sent_member (user_id, room_id),
  CONSTRAINT push_sent_pusher_fk FOREIGN KEY (pusher_id) REFERENCES pushers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
