-- A request that states no purpose of use has a NULL purpose, and `NULL = 'BTG'`
-- is NULL, not false. The checks below decide whether a read is refused (and
-- recorded as refused) before any row is touched; with a NULL they let the read
-- go on, the row-level policies then hid every row, and the audit log said
-- "success" for what was in fact a refusal. They now answer true or false only.

create or replace function perpetua.break_glass_open(p_patient uuid) returns boolean
language plpgsql stable
as $$
begin
  return coalesce(perpetua.purpose_of_use() = 'BTG', false) and exists (
    select 1 from phi.break_glass_grants g
    where g.practice_id = perpetua.practice_id()
      and g.user_id = perpetua.actor_id()
      and g.patient_id = p_patient
      and pg_catalog.now() between g.starts_at and g.expires_at
  );
end
$$;

create or replace function phi_api.may_read(p_category text) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select perpetua.permits(p_category, 'view') is not null
    or coalesce(perpetua.purpose_of_use() = 'BTG', false)
$$;
