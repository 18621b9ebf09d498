-- An account's own rows, read in pages by an export (and by an erasing deletion) without
-- sorting all of them for every page: messages by sender, reactions by user.
CREATE INDEX messages_sender ON messages (sender_id, id);
CREATE INDEX reactions_user ON reactions (user_id, message_id, emoji);
