-- Tenants (docs/api.md, "Tenants"): a device is its tenant and id, and each tenant has a change
-- log of its own. Every device and change stored before belongs to the default tenant, kbgap.
CREATE TABLE devices_by_tenant (
  tenant             TEXT NOT NULL,      -- the `tid` of the token that wrote it
  id                 TEXT NOT NULL,      -- 40 lower-case hex characters
  computer_dns_name  TEXT NOT NULL,
  name_key           TEXT NOT NULL,      -- lower-case computer_dns_name, for lookups by name
  inventory          TEXT NOT NULL,      -- the device as kbgap JSON
  first_seen         TEXT NOT NULL,      -- ISO 8601 UTC
  last_seen          TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  written_version    INTEGER NOT NULL DEFAULT 0,  -- of the write that stored it
  PRIMARY KEY (tenant, id)
);
INSERT INTO devices_by_tenant (tenant, id, computer_dns_name, name_key, inventory, first_seen,
                               last_seen, updated_at, written_version)
  SELECT 'kbgap', id, computer_dns_name, name_key, inventory, first_seen, last_seen, updated_at,
         written_version FROM devices;
DROP TABLE devices;
ALTER TABLE devices_by_tenant RENAME TO devices;
CREATE INDEX devices_by_name ON devices (tenant, name_key);
CREATE INDEX devices_by_written_version ON devices (written_version);

CREATE TABLE removed_by_tenant (
  tenant   TEXT NOT NULL,
  id       TEXT NOT NULL,
  version  INTEGER NOT NULL,       -- of the write that removed it
  PRIMARY KEY (tenant, id)
);
INSERT INTO removed_by_tenant (tenant, id, version) SELECT 'kbgap', id, version FROM removed_devices;
DROP TABLE removed_devices;
ALTER TABLE removed_by_tenant RENAME TO removed_devices;
CREATE INDEX removed_devices_by_version ON removed_devices (version);

ALTER TABLE device_changes ADD COLUMN tenant TEXT NOT NULL DEFAULT 'kbgap';
DROP INDEX device_changes_by_position;
CREATE UNIQUE INDEX device_changes_by_position ON device_changes (tenant, position);
-- device_changes_by_time (at) stays: publishing and forgetting go by time across tenants.
CREATE INDEX device_changes_by_tenant_time ON device_changes (tenant, at);
