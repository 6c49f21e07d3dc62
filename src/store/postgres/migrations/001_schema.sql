-- kbgap's schema on PostgreSQL: the same tables as the SQLite file (src/store/sqlite/migrations,
-- where each column is explained), in one step. Text that is compared or ordered (ids, times) is
-- COLLATE "C": bytes, as in SQLite, whatever the database's locale. Row ids of the catalog are
-- given by kbgap (one writer at a time holds the catalog's lock), so a month's rows go in by COPY.

-- The MSRC catalog: every row belongs to the document it was read from.
CREATE TABLE documents (
  id               text COLLATE "C" PRIMARY KEY,
  title            text NOT NULL,
  initial_release  text COLLATE "C" NOT NULL,
  current_release  text COLLATE "C" NOT NULL,
  revision         text NOT NULL,
  source           text NOT NULL,
  sha256           text NOT NULL,
  vulnerabilities  bigint NOT NULL,
  imported_at      text NOT NULL,
  kb_fixes         bigint NOT NULL DEFAULT 0
);

CREATE TABLE products (
  document_id  text COLLATE "C" NOT NULL REFERENCES documents(id),
  product_id   text COLLATE "C" NOT NULL,
  name         text NOT NULL,
  family       text NOT NULL,
  PRIMARY KEY (document_id, product_id)
);
CREATE INDEX products_by_id ON products(product_id);

CREATE TABLE vulnerabilities (
  id                  bigint PRIMARY KEY,
  document_id         text COLLATE "C" NOT NULL REFERENCES documents(id),
  ordinal             bigint NOT NULL,
  cve                 text COLLATE "C" NOT NULL,
  title               text NOT NULL,
  severity            text NOT NULL,
  impact              text NOT NULL,
  cvss_base           double precision,
  exploited           boolean,
  publicly_disclosed  boolean,
  cvss_vector         text,
  published           text COLLATE "C",
  updated             text COLLATE "C"
);
CREATE INDEX vulnerabilities_by_document ON vulnerabilities(document_id);
CREATE INDEX vulnerabilities_by_cve ON vulnerabilities(cve);

CREATE TABLE vulnerability_products (
  vulnerability_id  bigint NOT NULL REFERENCES vulnerabilities(id),
  product_id        text COLLATE "C" NOT NULL,
  severity          text NOT NULL,
  impact            text NOT NULL,
  cvss_base         double precision,
  PRIMARY KEY (vulnerability_id, product_id)
);

CREATE TABLE remediations (
  id                bigint PRIMARY KEY,
  vulnerability_id  bigint NOT NULL REFERENCES vulnerabilities(id),
  document_id       text COLLATE "C" NOT NULL REFERENCES documents(id),
  cve               text COLLATE "C" NOT NULL,
  kb                bigint NOT NULL,
  subtype           text NOT NULL,
  fixed_build       text NOT NULL,
  fixed_build_raw   text NOT NULL,
  url               text NOT NULL,
  restart_required  text NOT NULL
);
CREATE INDEX remediations_by_document ON remediations(document_id);
CREATE INDEX remediations_by_kb ON remediations(kb);
CREATE INDEX remediations_by_vulnerability ON remediations(vulnerability_id);

CREATE TABLE remediation_products (
  remediation_id  bigint NOT NULL REFERENCES remediations(id),
  product_id      text COLLATE "C" NOT NULL,
  PRIMARY KEY (remediation_id, product_id)
);

CREATE TABLE remediation_supersedes (
  remediation_id  bigint NOT NULL REFERENCES remediations(id),
  superseded_kb   bigint NOT NULL,
  PRIMARY KEY (remediation_id, superseded_kb)
);

CREATE TABLE catalog_imports (
  id               bigserial PRIMARY KEY,
  document_id      text COLLATE "C" NOT NULL,
  revision         text NOT NULL,
  current_release  text NOT NULL,
  sha256           text NOT NULL,
  source           text NOT NULL,
  outcome          text NOT NULL,
  imported_at      text NOT NULL,
  changes          text NOT NULL DEFAULT '{}'
);
CREATE INDEX catalog_imports_by_document ON catalog_imports(document_id);

CREATE TABLE catalog_listed (
  document_id     text COLLATE "C" PRIMARY KEY,
  listed_release  text NOT NULL
);

-- Devices, each kept as its kbgap JSON inventory (docs/inventory.md).
CREATE TABLE devices (
  id                 text COLLATE "C" PRIMARY KEY,
  computer_dns_name  text NOT NULL,
  name_key           text COLLATE "C" NOT NULL,
  inventory          text NOT NULL,
  first_seen         text COLLATE "C" NOT NULL,
  last_seen          text COLLATE "C" NOT NULL,
  updated_at         text NOT NULL
);
CREATE INDEX devices_by_name ON devices (name_key);

-- Bumped by every write of devices, in its transaction; every server is told the new number
-- (NOTIFY kbgap_fleet) when it commits.
CREATE TABLE fleet_version (
  id       integer PRIMARY KEY CHECK (id = 1),
  version  bigint NOT NULL
);
INSERT INTO fleet_version (id, version) VALUES (1, 0);

-- The change log of the delta export.
CREATE TABLE change_sets (
  id     bigserial PRIMARY KEY,
  at     text COLLATE "C" NOT NULL,
  rows   text NOT NULL,
  count  bigint NOT NULL
);
CREATE INDEX change_sets_by_time ON change_sets (at);
CREATE TABLE device_changes (
  seq          bigserial PRIMARY KEY,
  at           text COLLATE "C" NOT NULL,
  device_id    text COLLATE "C" NOT NULL,
  device_name  text NOT NULL,
  change_set   bigint NOT NULL,
  count        bigint NOT NULL,
  position     bigint NOT NULL
);
CREATE INDEX device_changes_by_time ON device_changes (at);
CREATE UNIQUE INDEX device_changes_by_position ON device_changes (position);
