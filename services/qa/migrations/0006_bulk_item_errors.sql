-- Why an item was counted `processing_failed` (its check hit the time limit, storage failed, …), kept with the item
-- so an operator can see what went wrong with which episode of a run.
--
-- Idempotent: this file was 0005 on the branch that wrote it, and a database migrated there has already applied it
-- under that name; it must pass here as a no-op. Plain ADD CONSTRAINT rather than NOT VALID + VALIDATE: the migrator
-- runs a file in one transaction, which holds the ADD COLUMN's ACCESS EXCLUSIVE lock to its end whatever follows, so a
-- VALIDATE here would scan under that same lock; only a separate file could scan under a weaker one, and one scan of
-- a column that is null in every row is not worth another renumbering hazard.
alter table bulk_run_items add column if not exists error text;
do $$
begin
  if not exists (
    select 1 from pg_constraint
    where conrelid = 'bulk_run_items'::regclass and conname = 'bulk_run_items_error_only_when_processing_failed'
  ) then
    alter table bulk_run_items add constraint bulk_run_items_error_only_when_processing_failed
      check (error is null or outcome = 'processing_failed');
  end if;
end $$;
