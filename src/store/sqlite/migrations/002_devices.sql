-- Devices: each kept as its kbgap JSON inventory (docs/inventory.md), with the fields lookups
-- need as columns. A device is its id: writing it again replaces it, keeping first_seen.
CREATE TABLE devices (
  id                 TEXT PRIMARY KEY,   -- 40 lower-case hex characters
  computer_dns_name  TEXT NOT NULL,
  name_key           TEXT NOT NULL,      -- lower-case computer_dns_name, for lookups by name
  inventory          TEXT NOT NULL,      -- the device as kbgap JSON
  first_seen         TEXT NOT NULL,      -- ISO 8601 UTC
  last_seen          TEXT NOT NULL,
  updated_at         TEXT NOT NULL
);
CREATE INDEX devices_by_name ON devices (name_key);

-- Bumped by every write of devices, in the same transaction, so that every reader (another
-- process, another node) can tell cheaply whether the fleet changed.
CREATE TABLE fleet_version (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  version  INTEGER NOT NULL
);
INSERT INTO fleet_version (id, version) VALUES (1, 0);
