-- Tenants (docs/api.md, "Tenants"): a device is its tenant and id, and each tenant has a change
-- log of its own. Every device and change stored before belongs to the default tenant, kbgap.
ALTER TABLE devices ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'kbgap';
ALTER TABLE devices ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE devices DROP CONSTRAINT devices_pkey;
ALTER TABLE devices ADD PRIMARY KEY (tenant, id);
DROP INDEX devices_by_name;
CREATE INDEX devices_by_name ON devices (tenant, name_key);

ALTER TABLE removed_devices ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'kbgap';
ALTER TABLE removed_devices ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE removed_devices DROP CONSTRAINT removed_devices_pkey;
ALTER TABLE removed_devices ADD PRIMARY KEY (tenant, id);

ALTER TABLE device_changes ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'kbgap';
ALTER TABLE device_changes ALTER COLUMN tenant DROP DEFAULT;
DROP INDEX device_changes_by_position;
CREATE UNIQUE INDEX device_changes_by_position ON device_changes (tenant, position);
-- device_changes_by_time (at) stays: publishing and forgetting go by time across tenants.
CREATE INDEX device_changes_by_tenant_time ON device_changes (tenant, at);
