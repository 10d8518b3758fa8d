-- Seed 002's CBPM3 case: a day of 10 Hz readings (864,000 rows) of six beam-position monitors,
-- four button signals each, and six bunch currents: one timestamp and 30 float columns.
-- Deterministic (no random()): slow drifts, a 60 Hz-like ripple and a beam loss at 14:00.
-- psql -v day=2026-03-01 -f examples/cbpm3/fill.sql
DROP TABLE IF EXISTS cbpm3;
CREATE TABLE cbpm3 AS
SELECT
  ts,
  b1 + 0.010 * s1 AS bpm1_a, b1 - 0.012 * s1 AS bpm1_b, b1 + 0.008 * s2 AS bpm1_c, b1 - 0.009 * s2 AS bpm1_d,
  b2 + 0.011 * s2 AS bpm2_a, b2 - 0.010 * s2 AS bpm2_b, b2 + 0.007 * s3 AS bpm2_c, b2 - 0.013 * s3 AS bpm2_d,
  b1 + 0.009 * s3 AS bpm3_a, b1 - 0.011 * s3 AS bpm3_b, b1 + 0.010 * s1 AS bpm3_c, b1 - 0.008 * s1 AS bpm3_d,
  b2 + 0.012 * s1 AS bpm4_a, b2 - 0.009 * s1 AS bpm4_b, b2 + 0.011 * s2 AS bpm4_c, b2 - 0.010 * s2 AS bpm4_d,
  b1 + 0.008 * s2 AS bpm5_a, b1 - 0.010 * s2 AS bpm5_b, b1 + 0.012 * s3 AS bpm5_c, b1 - 0.011 * s3 AS bpm5_d,
  b2 + 0.010 * s3 AS bpm6_a, b2 - 0.012 * s3 AS bpm6_b, b2 + 0.009 * s1 AS bpm6_c, b2 - 0.008 * s1 AS bpm6_d,
  cur AS current_1, cur * 0.99 AS current_2, cur * 1.01 AS current_3,
  cur * 0.98 AS current_4, cur * 1.02 AS current_5, cur * 0.97 AS current_6
FROM (
  SELECT
    ts,
    sin(n / 36000.0) AS s1, cos(n / 9000.0) AS s2, sin(n * 0.6283) AS s3,
    (CASE WHEN n BETWEEN 504000 AND 504600 THEN 0.2 ELSE 1.0 END) * (100 + 5 * sin(n / 86400.0)) AS cur,
    1.0 + 0.05 * sin(n / 7200.0) AS b1, 1.0 + 0.04 * cos(n / 5400.0) AS b2
  FROM (
    SELECT n, (:'day'::timestamptz + n * interval '100 milliseconds') AS ts
    FROM generate_series(0, 863999) AS n
  ) AS t
) AS r;
CREATE INDEX cbpm3_ts ON cbpm3 (ts);
ANALYZE cbpm3;
