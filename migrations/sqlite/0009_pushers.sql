-- Push: the devices a user registered to be pushed to (a browser's Web Push subscription, or
-- a device behind a Matrix-style push gateway), each belonging to the session that registered
-- it. ``device_key`` names the device (a digest of its endpoint, or of its gateway, app and
-- pushkey): the same device registered again replaces itself.
CREATE TABLE pushers (
  id TEXT NOT NULL PRIMARY KEY,
  user_id TEXT NOT NULL,
  session_id TEXT NULL,
  kind TEXT NOT NULL,
  device_key TEXT NOT NULL,
  url TEXT NOT NULL,
  p256dh TEXT NULL,
  auth TEXT NULL,
  pushkey TEXT NULL,
  app_id TEXT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pushers_device ON pushers (device_key);
CREATE INDEX pushers_user ON pushers (user_id);
CREATE INDEX pushers_session ON pushers (session_id);
