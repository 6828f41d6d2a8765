-- Each claim of a bulk item gets its own token: renewing and finishing match the token, not the worker,
-- so a worker that lost an item's lease (and may even have claimed it again since) can never finish it
-- twice, and a finished check is counted in the same transaction that records it.
alter table bulk_run_items add column claim_token uuid;

-- Production's updated_at of the episode as last projected: an episode.updated event older than what
-- QA already has (redelivered, or overtaken by a later one) leaves the labels alone.
alter table episodes add column source_updated_at timestamptz;
