"""Orders outbox relay: a consumer that owns its source. It streams the `outbox` table's inserts
from a Postgres logical-replication slot and publishes each row to Kafka, confirming a position
to Postgres only once Kafka has acknowledged every row before it (at-least-once, no loss).

It is a single writer: a logical slot streams to one connection at a time, so the service runs
exactly one task, and a new task waits for the old one's walsender to let go of the slot."""
