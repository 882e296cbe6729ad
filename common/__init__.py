"""Cross-cutting parts every service declares: database, cache, outbox, events, correlation id, metrics."""
