-- The MSRC catalog: every row belongs to the document it was read from, so that a newer
-- revision of a month replaces exactly that month's rows inside one transaction.
CREATE TABLE documents (
  id               TEXT PRIMARY KEY,   -- "2020-Mar"
  title            TEXT NOT NULL,      -- "March 2020 Security Updates"
  initial_release  TEXT NOT NULL,      -- ISO 8601 UTC
  current_release  TEXT NOT NULL,
  revision         TEXT NOT NULL,
  source           TEXT NOT NULL,      -- file (or archive!member) it was imported from
  sha256           TEXT NOT NULL,
  vulnerabilities  INTEGER NOT NULL,   -- vuln:Vulnerability elements read
  imported_at      TEXT NOT NULL
);

CREATE TABLE products (
  document_id  TEXT NOT NULL REFERENCES documents(id),
  product_id   TEXT NOT NULL,          -- "11713", or "11650-10855" for a component on a host
  name         TEXT NOT NULL,
  family       TEXT NOT NULL,          -- Product Family branch: Windows, Browser, ESU, ...
  PRIMARY KEY (document_id, product_id)
) WITHOUT ROWID;
CREATE INDEX products_by_id ON products(product_id);

CREATE TABLE vulnerabilities (
  id                  INTEGER PRIMARY KEY,
  document_id         TEXT NOT NULL REFERENCES documents(id),
  ordinal             INTEGER NOT NULL,
  cve                 TEXT NOT NULL,
  title               TEXT NOT NULL,
  severity            TEXT NOT NULL,   -- highest over the affected products
  impact              TEXT NOT NULL,   -- most frequent over the affected products
  cvss_base           REAL,            -- highest over the affected products
  exploited           INTEGER,         -- 1, 0 or NULL when not stated
  publicly_disclosed  INTEGER
);
CREATE INDEX vulnerabilities_by_document ON vulnerabilities(document_id);
CREATE INDEX vulnerabilities_by_cve ON vulnerabilities(cve);

CREATE TABLE vulnerability_products (
  vulnerability_id  INTEGER NOT NULL REFERENCES vulnerabilities(id),
  product_id        TEXT NOT NULL,
  severity          TEXT NOT NULL,
  impact            TEXT NOT NULL,
  cvss_base         REAL,
  PRIMARY KEY (vulnerability_id, product_id)
) WITHOUT ROWID;

CREATE TABLE remediations (
  id                INTEGER PRIMARY KEY,
  vulnerability_id  INTEGER NOT NULL REFERENCES vulnerabilities(id),
  document_id       TEXT NOT NULL REFERENCES documents(id),
  cve               TEXT NOT NULL,
  kb                INTEGER NOT NULL,
  subtype           TEXT NOT NULL,
  fixed_build       TEXT NOT NULL,     -- normalized dotted builds, ';'-joined, or ''
  fixed_build_raw   TEXT NOT NULL,     -- as published
  url               TEXT NOT NULL,
  restart_required  TEXT NOT NULL
);
CREATE INDEX remediations_by_document ON remediations(document_id);
CREATE INDEX remediations_by_kb ON remediations(kb);

CREATE TABLE remediation_products (
  remediation_id  INTEGER NOT NULL REFERENCES remediations(id),
  product_id      TEXT NOT NULL,
  PRIMARY KEY (remediation_id, product_id)
) WITHOUT ROWID;

CREATE TABLE remediation_supersedes (
  remediation_id  INTEGER NOT NULL REFERENCES remediations(id),
  superseded_kb   INTEGER NOT NULL,
  PRIMARY KEY (remediation_id, superseded_kb)
) WITHOUT ROWID;
