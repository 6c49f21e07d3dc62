-- Change parts (docs/api.md, "The delta export"): rows of change that many devices' change sets
-- hold alike (a KB's CVEs on one build, New for every device just onboarded on it) are kept once
-- per recording in change_parts, and a set names its parts by id (a JSON array) instead of
-- holding its rows. Sets recorded before keep their rows (parts NULL).
CREATE TABLE change_parts (
  id     bigserial PRIMARY KEY,
  at     text COLLATE "C" NOT NULL,
  rows   text NOT NULL,
  count  bigint NOT NULL
);
CREATE INDEX change_parts_by_time ON change_parts (at);
ALTER TABLE change_sets ADD COLUMN parts text;
