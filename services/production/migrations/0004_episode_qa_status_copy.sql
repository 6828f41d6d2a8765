-- Production keeps a read copy of each episode's QA status (QA owns it, DESIGN §7). Events from QA may
-- arrive out of order: the copy moves only forward in QA's own time.
alter table episodes add column qa_status_changed_at timestamptz;
