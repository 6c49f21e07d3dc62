-- Change parts (docs/api.md, "The delta export"): rows of change that many devices' change sets
-- hold alike (a KB's CVEs on one build, New for every device just onboarded on it) are kept once
-- per recording in change_parts, and a set names its parts by id (a JSON array) instead of
-- holding its rows. A million-device fleet's write of 10,000 real devices kept some two million
-- rows in ~2,000 sets this way before (bench/write_bench.py --fleet real). Sets recorded before
-- keep their rows (parts NULL).
CREATE TABLE change_parts (
  id    INTEGER PRIMARY KEY,
  at    TEXT NOT NULL,      -- as its sets': when published, or the recorder's pending mark
  rows  TEXT NOT NULL,      -- JSON, as change_sets.rows
  count INTEGER NOT NULL    -- of rows
);
CREATE INDEX change_parts_by_time ON change_parts (at);
ALTER TABLE change_sets ADD COLUMN parts TEXT;
