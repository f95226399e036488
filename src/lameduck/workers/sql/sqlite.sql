-- The job table on SQLite (workers/sqlite.py). {table} and {due_index} are validated identifiers.
-- Times are epoch seconds (REAL) from the caller's time.time(): every process on the machine shares that clock.
-- For a running row run_at equals lease_expires_at, so one index range finds queued jobs and expired leases.

-- name: create_table
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    key TEXT,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at REAL NOT NULL,
    claimed_by TEXT,
    lease_expires_at REAL,
    last_error TEXT,
    enqueued_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (queue, key)
)

-- name: create_due_index
CREATE INDEX IF NOT EXISTS {due_index} ON {table} (queue, run_at, id) WHERE state IN ('queued', 'running')

-- name: enqueue
INSERT INTO {table} (queue, payload, key, run_at, enqueued_at)
VALUES (:queue, :payload, :key, :run_at, :now)
ON CONFLICT (queue, key) DO NOTHING
RETURNING id

-- name: find_key
SELECT id FROM {table} WHERE queue = :queue AND key = :key

-- name: any_due
SELECT EXISTS (SELECT 1 FROM {table} WHERE queue = :queue AND state IN ('queued', 'running') AND run_at <= :now)

-- name: due
-- One queue at a time: with several queues in one query SQLite sorts every due row instead of walking the index.
SELECT id, queue, payload, attempts + 1, key, run_at FROM {table}
WHERE queue = :queue AND state IN ('queued', 'running') AND run_at <= :now
ORDER BY run_at, id
LIMIT :limit

-- name: claim
UPDATE {table}
SET state = 'running', claimed_by = :worker, attempts = attempts + 1, lease_expires_at = :until, run_at = :until
WHERE id IN (SELECT value FROM json_each(:ids))

-- name: extend
UPDATE {table}
SET lease_expires_at = :until, run_at = :until
FROM (SELECT json_extract(value, '$[0]') AS held_id, json_extract(value, '$[1]') AS held_attempts FROM json_each(:held)) AS held
WHERE {table}.id = held.held_id AND {table}.attempts = held.held_attempts
  AND {table}.claimed_by = :worker AND {table}.state = 'running'
RETURNING id

-- name: ack
UPDATE {table}
SET state = 'done', finished_at = :now, claimed_by = NULL, lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running'

-- name: release
UPDATE {table}
SET state = 'queued', run_at = :now, claimed_by = NULL, lease_expires_at = NULL, attempts = {table}.attempts - 1
FROM (SELECT json_extract(value, '$[0]') AS held_id, json_extract(value, '$[1]') AS held_attempts FROM json_each(:held)) AS held
WHERE {table}.id = held.held_id AND {table}.attempts = held.held_attempts
  AND {table}.claimed_by = :worker AND {table}.state = 'running'

-- name: retry
UPDATE {table}
SET state = 'queued', run_at = :run_at, last_error = :error, claimed_by = NULL, lease_expires_at = NULL
WHERE id = :id AND attempts = :attempts AND claimed_by = :worker AND state = 'running'

-- name: bury
UPDATE {table}
SET state = 'dead', last_error = :error, finished_at = :now, claimed_by = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running'

-- name: status
SELECT queue, CASE WHEN state = 'queued' AND run_at > :now THEN 'scheduled' ELSE state END, count(*)
FROM {table}
GROUP BY 1, 2

-- name: status_of
SELECT queue, CASE WHEN state = 'queued' AND run_at > :now THEN 'scheduled' ELSE state END, count(*)
FROM {table}
WHERE queue IN (SELECT value FROM json_each(:queues))
GROUP BY 1, 2
