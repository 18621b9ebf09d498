-- Notices of processes that serve no sockets (the `cronchat` command) on their way to the
-- servers, which poll this table: the database is the one thing every process shares.
-- AUTOINCREMENT: ids are never reused, so a server's "read up to id N" stays true when old
-- rows are pruned. The table holds minutes of administration; no other index is needed.
CREATE TABLE notices (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  notice TEXT NOT NULL
);
