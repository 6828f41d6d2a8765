-- A task's order, batch, workstation and scene must agree. Two composite keys say exactly that — the
-- batch carries the order and workstation, the order carries the scene — where four single-column keys
-- only said each exists. They also halve the per-row key checks of bulk task creation.
create unique index batches_id_order_workstation_key on batches (id, order_id, workstation_id);
create unique index orders_id_scene_key on orders (id, scene_id);

alter table tasks
  drop constraint tasks_order_id_fkey,
  drop constraint tasks_batch_id_fkey,
  drop constraint tasks_workstation_id_fkey,
  drop constraint tasks_scene_id_fkey;

alter table tasks
  add constraint tasks_batch_fkey foreign key (batch_id, order_id, workstation_id)
    references batches (id, order_id, workstation_id),
  add constraint tasks_order_scene_fkey foreign key (order_id, scene_id) references orders (id, scene_id);
