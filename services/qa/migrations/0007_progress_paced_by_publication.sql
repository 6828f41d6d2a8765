-- Progress events are paced by when subscribers can have received the previous one, not by when it was written:
-- the next progress event of a run is written only once a worker has seen the previous one published (the outbox
-- row marked) and BULK_PROGRESS_INTERVAL_MS has passed since. A relay that lags, or comes back after an outage, then
-- never delivers a backlog of a run's progress in a burst: ≤ 2 per second per run holds on the stream itself.
--
-- Idempotent, like 0006: this file was 0006 on the branch that wrote it, and a database migrated there has already
-- applied it under that name.
alter table bulk_runs add column if not exists last_progress_event_id uuid;
-- When a worker first saw that event published (after the relay committed its mark, so after the stream stored it).
alter table bulk_runs add column if not exists last_progress_published_at timestamptz;
