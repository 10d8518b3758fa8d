-- Profiles (`streamprep profile`'s CSV) kept by name, for the planner.
CREATE TABLE profiles (
    name TEXT PRIMARY KEY,
    csv TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
