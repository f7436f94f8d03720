-- A count of the deletions of `series` rows (retention removes series left without
-- samples), so that every server sharing the database can tell when the series ids it
-- has cached may be stale: the deleting transaction counts it up, and a sample insert
-- reads it under the same advisory lock. Row level security on with no policy, like
-- every other table.
CREATE TABLE IF NOT EXISTS series_state (
    id INT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
ALTER TABLE series_state ENABLE ROW LEVEL SECURITY;
INSERT INTO series_state (id, generation) VALUES (1, 0) ON CONFLICT DO NOTHING;
