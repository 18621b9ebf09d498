-- Push: the devices a user registered to be pushed to (a browser's Web Push subscription, or
-- a device behind a Matrix-style push gateway), each belonging to the session that registered
-- it. ``device_key`` names the device (a digest of its endpoint, or of its gateway, app and
-- pushkey): the same device registered again replaces itself.
CREATE TABLE pushers (
  id VARCHAR(26) NOT NULL PRIMARY KEY,
  user_id VARCHAR(26) NOT NULL,
  session_id VARCHAR(26) NULL,
  kind VARCHAR(16) NOT NULL,
  device_key CHAR(64) NOT NULL,
  url TEXT NOT NULL,
  p256dh VARCHAR(128) NULL,
  auth VARCHAR(64) NULL,
  pushkey VARCHAR(512) NULL,
  app_id VARCHAR(64) NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE KEY pushers_device (device_key),
  KEY pushers_user (user_id),
  KEY pushers_session (session_id),
  CONSTRAINT pushers_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
