-- The billing ledger: one row per usage event, exported by smdb-controller
-- (docs/billing.md).  The controller applies this file itself, idempotently,
-- every time it connects (it is compiled into the binary), so a fresh
-- database needs nothing but to exist.  Change it only by adding: existing
-- ledgers are never migrated destructively.

CREATE TABLE IF NOT EXISTS usage_ledger (
    -- the event's idempotency key: "<compute_id>:<start_ms>:compute",
    -- "<compute_id>:<start_ms>:storage" or
    -- "<project>:<end_ms>.<nginx pid>.<nginx connection>:transfer".
    -- The exporter inserts with ON CONFLICT (key) DO NOTHING, so an event
    -- exported twice (a crash between commit and acknowledgement) is
    -- stored once.
    key          text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('compute', 'storage', 'transfer')),
    project      text NOT NULL,
    compute_id   text,
    start_ms     bigint NOT NULL,           -- Unix ms, UTC
    end_ms       bigint NOT NULL CHECK (end_ms >= start_ms),
    seconds      double precision NOT NULL, -- end - start
    cu           integer,                   -- compute: size in compute units
    cu_seconds   double precision,          -- compute: seconds * cu
    bytes        bigint,                    -- storage: datadir size held
    byte_seconds double precision,          -- storage: seconds * bytes
    bytes_in     bigint,                    -- transfer: client -> compute
    bytes_out    bigint,                    -- transfer: compute -> client
    event        jsonb NOT NULL,            -- the event as the controller recorded it
    exported_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS usage_ledger_project_start ON usage_ledger (project, start_ms);

COMMENT ON TABLE usage_ledger IS
    'smdb usage events, exactly once per idempotency key (see docs/billing.md)';
