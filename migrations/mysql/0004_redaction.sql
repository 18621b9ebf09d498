-- Deletion is redaction: each message event names its message, so that deleting a message
-- rewrites every stored event of it (and of the replies quoting it) in the deleting
-- transaction, by index.
ALTER TABLE room_events ADD COLUMN message_id VARCHAR(26) NULL;
UPDATE room_events SET message_id = JSON_UNQUOTE(JSON_EXTRACT(data, '$.id'))
  WHERE type IN ('message.created', 'message.edited', 'message.deleted');
CREATE INDEX room_events_message ON room_events (message_id);
CREATE INDEX messages_reply_to ON messages (reply_to_id);
-- Message objects carry client_msg_id: so do the message events stored before they did.
UPDATE room_events e JOIN messages m ON m.id = e.message_id
  SET e.data = JSON_SET(e.data, '$.client_msg_id', m.client_msg_id);
-- Messages deleted before redaction existed: their earlier events become tombstones, and
-- replies quoting them lose the excerpt.
UPDATE room_events SET data = JSON_SET(data, '$.text', NULL, '$.media', NULL,
  '$.deleted', JSON_EXTRACT('true', '$'), '$.reactions', JSON_ARRAY())
  WHERE message_id IN (SELECT id FROM messages WHERE deleted_at IS NOT NULL);
UPDATE room_events SET data = JSON_SET(data, '$.reply_to.excerpt', NULL,
  '$.reply_to.deleted', JSON_EXTRACT('true', '$'))
  WHERE message_id IN (SELECT reply.id FROM messages reply JOIN messages quoted
    ON quoted.id = reply.reply_to_id WHERE quoted.deleted_at IS NOT NULL);
