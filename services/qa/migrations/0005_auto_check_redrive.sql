-- Re-drive of auto QA: the claim sweeper asks again for an episode still pending_qa long after anything touched it
-- (auto QA gave up after max_deliver, or never got to it). When it last did and how many times, so each episode is
-- re-driven at most once per QA_REDRIVE_AFTER_MS and at most QA_REDRIVE_MAX times, whatever the number of replicas.
alter table episodes add column redriven_at timestamptz;
alter table episodes add column redrive_count integer not null default 0 check (redrive_count >= 0);
create index episodes_stalled_idx on episodes (status_changed_at)
  where qa_status = 'pending_qa' and claim_id is null and last_run_id is null;
