-- Why an item was counted `processing_failed` (its check hit the time limit, storage failed, …), kept with the item
-- so an operator can see what went wrong with which episode of a run.
alter table bulk_run_items add column error text;
alter table bulk_run_items add constraint bulk_run_items_error_only_when_processing_failed
  check (error is null or outcome = 'processing_failed');
