-- Unread counts read (room_id, seq, sender_id, deleted_at) of the messages above a member's
-- read marker: an index holding all four answers them without touching the rows.
CREATE INDEX messages_unread ON messages (room_id, seq, sender_id, deleted_at);
