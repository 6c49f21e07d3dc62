-- How many KB fixes each month lists (an early, partial revision of a month lists none: what
-- tells a complete Patch Tuesday from a partial one), and every import that changed a month.
ALTER TABLE documents ADD COLUMN kb_fixes INTEGER NOT NULL DEFAULT 0;
UPDATE documents SET kb_fixes = (SELECT COUNT(*) FROM remediations r WHERE r.document_id = documents.id);

CREATE TABLE catalog_imports (
  id               INTEGER PRIMARY KEY,
  document_id      TEXT NOT NULL,      -- "2026-Nov"
  revision         TEXT NOT NULL,
  current_release  TEXT NOT NULL,
  sha256           TEXT NOT NULL,
  source           TEXT NOT NULL,      -- file, archive!member or URL
  outcome          TEXT NOT NULL,      -- "added" or "replaced"
  imported_at      TEXT NOT NULL,
  changes          TEXT NOT NULL DEFAULT '{}'  -- JSON: what it changed (catalog/changes.h)
);
CREATE INDEX catalog_imports_by_document ON catalog_imports(document_id);
INSERT INTO catalog_imports (document_id, revision, current_release, sha256, source, outcome,
                             imported_at)
  SELECT id, revision, current_release, sha256, source, 'added', imported_at FROM documents
  ORDER BY initial_release;

-- Replacing a month deletes its vulnerabilities; with foreign keys on, each deleted row is looked
-- up in remediations by vulnerability_id. Without this index, every lookup scanned the table:
-- replacing 2026-May (494 vulnerabilities, 107,517 KB fixes stored) took 5.2 s, 0.1 s with it.
CREATE INDEX remediations_by_vulnerability ON remediations(vulnerability_id);

-- The list time (the API's CurrentReleaseDate) at which a sync last fetched each month: a month
-- whose document turned out unchanged, or older than the stored one, is not fetched again until
-- the list moves on.
CREATE TABLE catalog_listed (
  document_id     TEXT PRIMARY KEY,
  listed_release  TEXT NOT NULL
);
