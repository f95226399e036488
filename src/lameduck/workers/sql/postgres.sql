-- The job table on PostgreSQL (workers/postgres.py). {table} and {due_index} are validated identifiers.
-- Every time comes from the server (now(): the statement's transaction start), never from a client's clock.
-- For a running row run_at equals lease_expires_at, so one index range finds queued jobs and expired leases.
-- Each statement runs alone in autocommit: one round trip, one transaction. NOTIFY uses the table's name as
-- its channel and the queue as the payload, so a listener wakes only for what it may claim.

-- name: schema_exists
SELECT to_regclass(%(table)s) IS NOT NULL AND to_regclass(%(due_index)s) IS NOT NULL

-- name: lock_schema
SELECT pg_advisory_xact_lock(hashtextextended('lameduck schema ' || %(table)s, 0))

-- name: create_table
CREATE TABLE IF NOT EXISTS {table} (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    payload jsonb NOT NULL,
    key text,
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    lease_expires_at timestamptz,
    last_error text,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (queue, key)
)

-- name: create_due_index
CREATE INDEX IF NOT EXISTS {due_index} ON {table} (queue, run_at, id) WHERE state IN ('queued', 'running')

-- name: listen
LISTEN {table}

-- name: enqueue
WITH inserted AS (
    INSERT INTO {table} (queue, payload, key, run_at)
    VALUES (%(queue)s, %(payload)s::jsonb, %(key)s, now() + %(delay)s::float8 * interval '1 second')
    ON CONFLICT (queue, key) DO NOTHING
    RETURNING id, queue
)
SELECT inserted.id FROM inserted, pg_notify('{table}', inserted.queue) AS notified

-- name: find_key
SELECT id FROM {table} WHERE queue = %(queue)s AND key = %(key)s

-- name: claim
-- The lateral subquery walks the due index of each subscribed queue in order, so a claim reads about `limit`
-- index entries whatever the backlog (`queue = ANY(...)` in one scan makes a generic plan sort every due row).
-- Rows it locks beyond the outer LIMIT stay queued and are unlocked when the statement commits.
UPDATE {table} AS job
SET state = 'running',
    claimed_by = %(worker)s,
    attempts = job.attempts + 1,
    lease_expires_at = now() + %(lease)s::float8 * interval '1 second',
    run_at = now() + %(lease)s::float8 * interval '1 second'
FROM (
    SELECT candidate.id, candidate.run_at
    FROM unnest(%(queues)s::text[]) AS subscribed (queue)
    CROSS JOIN LATERAL (
        SELECT id, run_at FROM {table}
        WHERE queue = subscribed.queue AND state IN ('queued', 'running') AND run_at <= now()
        ORDER BY run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS candidate
    ORDER BY candidate.run_at, candidate.id
    LIMIT %(limit)s
) AS due
WHERE job.id = due.id
RETURNING job.id, job.queue, job.payload, job.attempts, job.key, due.run_at

-- name: extend
UPDATE {table} AS job
SET lease_expires_at = now() + %(lease)s::float8 * interval '1 second',
    run_at = now() + %(lease)s::float8 * interval '1 second'
FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS held (id, attempts)
WHERE job.id = held.id AND job.attempts = held.attempts AND job.claimed_by = %(worker)s AND job.state = 'running'
RETURNING job.id

-- name: ack
UPDATE {table}
SET state = 'done', finished_at = now(), claimed_by = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running'

-- name: release
WITH released AS (
    UPDATE {table} AS job
    SET state = 'queued', run_at = now(), claimed_by = NULL, lease_expires_at = NULL, attempts = job.attempts - 1
    FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS held (id, attempts)
    WHERE job.id = held.id AND job.attempts = held.attempts AND job.claimed_by = %(worker)s
      AND job.state = 'running'
    RETURNING job.queue
)
SELECT pg_notify('{table}', queue) FROM (SELECT DISTINCT queue FROM released) AS queues

-- name: retry
WITH retried AS (
    UPDATE {table}
    SET state = 'queued', run_at = now() + %(delay)s::float8 * interval '1 second', last_error = %(error)s,
        claimed_by = NULL, lease_expires_at = NULL
    WHERE id = %(id)s AND attempts = %(attempts)s AND claimed_by = %(worker)s AND state = 'running'
    RETURNING queue
)
SELECT pg_notify('{table}', queue) FROM retried

-- name: bury
UPDATE {table}
SET state = 'dead', last_error = %(error)s, finished_at = now(), claimed_by = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND state = 'running'

-- name: status
SELECT queue, CASE WHEN state = 'queued' AND run_at > now() THEN 'scheduled' ELSE state END, count(*)
FROM {table}
GROUP BY 1, 2

-- name: status_of
SELECT queue, CASE WHEN state = 'queued' AND run_at > now() THEN 'scheduled' ELSE state END, count(*)
FROM {table}
WHERE queue = ANY(%(queues)s::text[])
GROUP BY 1, 2
