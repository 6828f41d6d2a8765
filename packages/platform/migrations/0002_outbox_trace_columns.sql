-- Outbox headers were a JSON document per row, mostly the same for every row. The relay now derives
-- the envelope from the row (id, event_type, created_at) and keeps only the trace ids as columns.
alter table outbox add column correlation_id text, add column causation_id text;
update outbox set correlation_id = headers ->> 'Ferry-Correlation-Id', causation_id = headers ->> 'Ferry-Causation-Id';
alter table outbox drop column headers;
