-- Counters every server adds to: the rate limits' calls per (application, endpoint group,
-- window), so that a limit holds across servers (docs/scaling.md, "Rate limits"). A counter is
-- removed once its window is over (`expires`, Unix seconds).
CREATE TABLE shared_counters (
  key      text COLLATE "C" PRIMARY KEY,
  count    bigint NOT NULL,
  expires  bigint NOT NULL
);
CREATE INDEX shared_counters_by_expiry ON shared_counters (expires);
