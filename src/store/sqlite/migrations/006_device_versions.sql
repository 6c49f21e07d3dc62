-- What changed since a fleet version (docs/scaling.md, "Writes cost the batch"): each device row
-- carries the version of the write that stored it, and each removal is remembered with its
-- version, so that a server holding the snapshot of version V reads only what was written or
-- removed after V. Rows stored before this migration carry 0: every snapshot already holds them.
ALTER TABLE devices ADD COLUMN written_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX devices_by_written_version ON devices (written_version);
CREATE TABLE removed_devices (
  id       TEXT PRIMARY KEY,
  version  INTEGER NOT NULL        -- of the write that removed it
);
CREATE INDEX removed_devices_by_version ON removed_devices (version);
-- Removals are kept for a while, not for ever: a snapshot older than `forgotten` cannot be
-- brought up to date from them, and its server reads every device instead.
ALTER TABLE fleet_version ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0;
