-- After termination the encrypted export waits at Perpetua for the practice to
-- download it. Perpetua cannot open it, but it is the practice's data and the
-- practice decides when it goes: an owner may have Perpetua's copy deleted. The
-- record keeps when and by whom; nothing else of a completed termination ever
-- changes.

alter table app.practice_terminations
  add column export_deleted_at timestamptz,
  add column export_deleted_by uuid references app.users (id),
  add constraint export_deleted_by_someone
    check ((export_deleted_at is null) = (export_deleted_by is null)),
  add constraint export_deleted_after_destruction
    check (export_deleted_at is null or state = 'destroyed');

create policy terminations_owner_deletes_export on app.practice_terminations
  for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) = 'owner'
    and state = 'destroyed'
    and export_deleted_at is null
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and export_deleted_by = (select perpetua.actor_id())
  );
grant update (export_deleted_at, export_deleted_by)
  on app.practice_terminations to perpetua_service;

create or replace function app.termination_guard() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
declare
  deletion constant text[] := array['export_deleted_at', 'export_deleted_by'];
begin
  if tg_op = 'DELETE'
     or new.practice_id is distinct from old.practice_id
     or new.requested_by is distinct from old.requested_by
     or new.requested_at is distinct from old.requested_at then
    raise exception 'a BAA termination cannot be changed or removed'
      using errcode = '42501';
  end if;
  -- A completed record admits one change: the deletion of the export, once.
  if old.state = 'destroyed'
     and (old.export_deleted_at is not null
          or new.export_deleted_at is null
          or (to_jsonb(new) - deletion) is distinct from (to_jsonb(old) - deletion))
  then
    raise exception 'a BAA termination cannot be changed or removed'
      using errcode = '42501';
  end if;
  return new;
end
$$;
revoke all on function app.termination_guard() from public;
