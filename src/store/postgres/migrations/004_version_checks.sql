-- How many devices the table holds, kept by every write: a server that brought its snapshot up to
-- date from the changes checks its count against it, and reads every device when they differ
-- (a database restored or failed over to a copy whose versions were numbered again).
ALTER TABLE fleet_version ADD COLUMN devices bigint NOT NULL DEFAULT 0;
UPDATE fleet_version SET devices = (SELECT count(*) FROM devices);
-- A random token for each recent version, written with it (see SQLite's migration 007).
CREATE TABLE version_tokens (
  version  bigint PRIMARY KEY,
  token    text NOT NULL
);
