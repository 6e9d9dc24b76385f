-- Functions that policies call on every read, made cheap; what each decides is
-- unchanged.
--
-- monitor.is_monitor() sits in a policy of every PHI table, so every read of a
-- patient, an appointment or a coverage evaluates it once; audit.is_sealer() does
-- the same for every read of the audit log. As SQL functions with a SET clause
-- they were planned again on every call and always looked up a table's owner in
-- the catalog. As PL/pgSQL without a SET clause their plans are kept for the
-- session (names are schema-qualified, as in 0024), and the claims are tested
-- first, so a member's read answers false before the catalog is consulted.
--
-- perpetua.blob_category() is evaluated for every row of phi.blob_objects a read
-- considers; without its SET clause it is inlined into the policy as a CASE.

create or replace function monitor.is_monitor() returns boolean
language plpgsql stable
as $$
begin
  return coalesce(perpetua.actor_kind() = 'system', false)
    and coalesce(
      perpetua.practice_id() = '00000000-0000-0000-0000-000000000000'::uuid, false
    )
    and current_user = (
      select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c
      where c.oid = 'monitor.alerts'::pg_catalog.regclass
    );
end
$$;

create or replace function audit.is_sealer() returns boolean
language plpgsql stable
as $$
begin
  return coalesce(perpetua.actor_kind() = 'system', false)
    and current_user = (
      select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c
      where c.oid = 'audit.events'::pg_catalog.regclass
    );
end
$$;

create or replace function perpetua.blob_category(p_class text) returns text
language sql immutable
as $$
  select case p_class when 'documents' then 'clinical' else 'calls' end
$$;
