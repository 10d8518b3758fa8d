-- The per-key state of a project's steps (running scalers, windows), kept from one run to the
-- next (the engine's CBOR, base64: one text column works in SQLite and PostgreSQL alike).
CREATE TABLE project_state (
    project_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    saved_ms BIGINT NOT NULL
);
