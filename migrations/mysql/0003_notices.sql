-- Notices of processes that serve no sockets (the `cronchat` command) on their way to the
-- servers, which poll this table: the database is the one thing every process shares.
-- The newest row is never pruned, so the auto-increment counter never restarts below what a
-- server has read. The table holds minutes of administration; no other index is needed.
CREATE TABLE notices (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  created_at BIGINT NOT NULL,
  notice MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
