-- The reports whose snapshot names an image: a deletion's media stays while one is open.
CREATE INDEX reports_media ON reports (snapshot_media_id, status);
