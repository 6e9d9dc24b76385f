-- Terminating the Business Associate Agreement. An owner's termination row closes
-- the PHI gate at once (its trigger marks every execution terminated) and keeps
-- it closed for good: no execution can be created for a terminated practice, so
-- no later signature reopens it. The row then records the export handed to the
-- practice and the keystore's deletion certificates once the PHI keys are
-- destroyed (crypto-shredding); after that it never changes again.

create table app.practice_terminations (
  practice_id uuid primary key references app.practices (id),
  requested_by uuid not null references app.users (id),
  requested_at timestamptz not null,
  state text not null check (state in ('closing', 'destroyed')),
  -- The export archive: encrypted under a key Perpetua does not keep, so only
  -- its id, size, key derivation and digest of the encrypted file are recorded.
  export_id uuid unique,
  export_kdf text check (export_kdf in ('scrypt', 'random_key')),
  export_bytes bigint check (export_bytes > 0),
  export_sha256 text check (export_sha256 ~ '^[0-9a-f]{64}$'),
  export_counts jsonb,
  destroyed_at timestamptz,
  certificates jsonb,
  -- The certificate of destruction as a PDF in the document store.
  certificate_object_id uuid unique,
  certificate_wrapped_key bytea,
  certificate_sha256 text check (certificate_sha256 ~ '^[0-9a-f]{64}$'),
  check (
    state = 'closing'
    or (
      export_id is not null and export_sha256 is not null
      and destroyed_at is not null and certificates is not null
      and certificate_object_id is not null and certificate_sha256 is not null
    )
  )
);

alter table app.practice_terminations enable row level security;
alter table app.practice_terminations force row level security;

-- Every member sees that the practice is terminated; only an owner, as
-- themself, begins and completes it.
create policy terminations_visible on app.practice_terminations for select
  using (practice_id = (select perpetua.practice_id()));
create policy terminations_owner_begins on app.practice_terminations for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) = 'owner'
    and requested_by = (select perpetua.actor_id())
    and state = 'closing'
  );
create policy terminations_owner_completes on app.practice_terminations for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) = 'owner'
    and state = 'closing'
  )
  with check (practice_id = (select perpetua.practice_id()));
grant select, insert on app.practice_terminations to perpetua_service;
grant update (
  state, export_id, export_kdf, export_bytes, export_sha256, export_counts,
  destroyed_at, certificates, certificate_object_id, certificate_wrapped_key,
  certificate_sha256
) on app.practice_terminations to perpetua_service;

create function perpetua.practice_terminated(p_practice uuid) returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select exists (
    select 1 from app.practice_terminations t where t.practice_id = p_practice
  )
$$;

-- The owner role updates executions only here, for the practice in the claims.
create policy baa_executions_terminate on app.baa_executions for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) = 'owner'
  );

create function app.termination_closes_gate() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  update app.baa_executions set terminated_at = new.requested_at
  where practice_id = new.practice_id and terminated_at is null;
  return new;
end
$$;
create trigger termination_closes_gate after insert on app.practice_terminations
  for each row execute function app.termination_closes_gate();

-- What is recorded stays: who asked and when never change, and a completed
-- termination is evidence, even for the table's owner.
create function app.termination_guard() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if tg_op = 'DELETE' or old.state = 'destroyed'
     or new.practice_id is distinct from old.practice_id
     or new.requested_by is distinct from old.requested_by
     or new.requested_at is distinct from old.requested_at then
    raise exception 'a BAA termination cannot be changed or removed'
      using errcode = '42501';
  end if;
  return new;
end
$$;
create trigger termination_guard before update or delete
  on app.practice_terminations
  for each row execute function app.termination_guard();

-- A terminated practice never holds PHI again: no new execution opens the gate,
-- and a reopened execution is refused as well.
create function app.baa_execution_after_termination() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if perpetua.practice_terminated(new.practice_id)
     and (tg_op = 'INSERT' or new.terminated_at is null) then
    raise exception 'the practice terminated its Business Associate Agreement'
      using errcode = 'PB002';
  end if;
  return new;
end
$$;
create trigger baa_execution_after_termination before insert or update
  on app.baa_executions
  for each row execute function app.baa_execution_after_termination();

-- The PHI gate, now naming termination apart from a BAA never signed.
create or replace function perpetua.guard_phi_write() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
declare
  p uuid := coalesce(new.practice_id, old.practice_id);
begin
  if tg_op <> 'DELETE' and not perpetua.baa_in_force(p) then
    if perpetua.practice_terminated(p) then
      raise exception 'the practice terminated its Business Associate Agreement'
        using errcode = 'PB002';
    end if;
    raise exception 'no PHI before a signed Business Associate Agreement'
      using errcode = 'PB001';
  end if;
  perform perpetua.assert_practice_writable(p);
  return coalesce(new, old);
end
$$;

-- The termination export: every appointment and clinical document of the
-- practice, for its owner, only while its termination is in progress. Each
-- read records its audit event before a row is returned, like every phi_api read.
create function phi_api.may_export_for_termination() returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select perpetua.actor_kind() = 'user'
    and perpetua.practice_role() = 'owner'
    and exists (
      select 1 from app.practice_terminations t
      where t.practice_id = perpetua.practice_id() and t.state = 'closing'
    )
$$;

create function phi_api.termination_export_appointments()
returns table (
  id uuid, patient_id uuid, provider_id uuid, starts_at timestamptz,
  ends_at timestamptz, reason_ct bytea, status text, created_at timestamptz,
  updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if not phi_api.may_export_for_termination() then
    perform phi_api.deny('export', 'appointment', '{}');
    return;
  end if;
  select coalesce(array_agg(a.id), '{}'), coalesce(array_agg(a.patient_id), '{}')
    into found_ids, patients from phi.appointments a;
  perform audit.record(
    'export', 'appointment', found_ids, patients, 'success', cardinality(found_ids)
  );
  return query
    select a.id, a.patient_id, a.provider_id, a.starts_at, a.ends_at, a.reason_ct,
           a.status, a.created_at, a.updated_at
    from phi.appointments a where a.id = any (found_ids)
    order by a.starts_at, a.id;
end
$$;

create function phi_api.termination_export_clinical_documents()
returns table (
  id uuid, patient_id uuid, kind text, body_ct bytea, created_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if not phi_api.may_export_for_termination() then
    perform phi_api.deny('export', 'clinical_document', '{}');
    return;
  end if;
  select coalesce(array_agg(d.id), '{}'), coalesce(array_agg(d.patient_id), '{}')
    into found_ids, patients from phi.clinical_documents d;
  perform audit.record(
    'export', 'clinical_document', found_ids, patients, 'success',
    cardinality(found_ids)
  );
  return query
    select d.id, d.patient_id, d.kind, d.body_ct, d.created_at
    from phi.clinical_documents d where d.id = any (found_ids)
    order by d.created_at, d.id;
end
$$;

revoke all on function perpetua.practice_terminated(uuid) from public;
revoke all on function app.termination_closes_gate() from public;
revoke all on function app.termination_guard() from public;
revoke all on function app.baa_execution_after_termination() from public;
revoke all on function phi_api.may_export_for_termination() from public;
revoke all on function phi_api.termination_export_appointments() from public;
revoke all on function phi_api.termination_export_clinical_documents() from public;
grant execute on function perpetua.practice_terminated(uuid) to perpetua_service;
grant execute on function phi_api.termination_export_appointments()
  to perpetua_service;
grant execute on function phi_api.termination_export_clinical_documents()
  to perpetua_service;
