-- How many devices the table holds, kept by every write: a server that brought its snapshot up to
-- date from the changes checks its count against it, and reads every device when they differ
-- (a database restored or failed over to a copy whose versions were numbered again).
ALTER TABLE fleet_version ADD COLUMN devices INTEGER NOT NULL DEFAULT 0;
UPDATE fleet_version SET devices = (SELECT count(*) FROM devices);
-- A random token for each recent version, written with it: a server asks for what changed since
-- the version its snapshot is of, and gives that version's token. A database restored to an older
-- copy numbers its next writes again, with other tokens: the server then reads every device,
-- however many devices the copy holds. Kept as long as removals are.
CREATE TABLE version_tokens (
  version  INTEGER PRIMARY KEY,
  token    TEXT NOT NULL
);
