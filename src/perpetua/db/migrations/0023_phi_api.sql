-- The only door to PHI. Each read function writes its audit event first and then
-- returns the rows, in one transaction: no audit row, no data. Functions run as
-- the owner, which forced row-level security still binds to the caller's claims,
-- so tenancy and roles are decided by the policies, never by these functions.
-- A refusal is recorded and flagged in the transaction-local setting
-- `perpetua.outcome`, so the service can tell "denied" from "not found".

create schema phi_api;
grant usage on schema phi_api to perpetua_service;

create function phi_api.deny(p_action text, p_type text, p_ids uuid[])
returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  perform audit.record(p_action, p_type, p_ids, '{}', 'denied', 0);
  perform set_config('perpetua.outcome', 'denied', true);
end
$$;

-- Whether a read of a category may proceed at all (rows are then filtered by the
-- policies). Break-glass requests pass here and are narrowed by the policies to
-- the one patient of the grant.
create function phi_api.may_read(p_category text) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select perpetua.permits(p_category, 'view') is not null
    or perpetua.purpose_of_use() = 'BTG'
$$;

-- Providers: practice configuration, not PHI; listing them is not audited.
create function phi_api.list_providers()
returns table (id uuid, display_name text, npi text)
language sql stable security definer
set search_path = pg_catalog
as $$
  select p.id, p.display_name, p.npi from phi.providers p
  where p.practice_id = perpetua.practice_id()
  order by p.display_name
$$;

create function phi_api.create_provider(p_id uuid, p_name text, p_npi text)
returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into phi.providers (id, practice_id, display_name, npi)
  values (p_id, perpetua.practice_id(), p_name, p_npi)
$$;

-- Patients --------------------------------------------------------------------

create function phi_api.create_patient(
  p_id uuid, p_name bytea, p_birth_date bytea, p_phone bytea, p_ehr_ref bytea,
  p_phone_bidx bytea, p_name_dob_bidx bytea
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into phi.patients (
    id, practice_id, name_ct, birth_date_ct, phone_ct, ehr_ref_ct, phone_bidx,
    name_dob_bidx
  ) values (
    p_id, perpetua.practice_id(), p_name, p_birth_date, p_phone, p_ehr_ref,
    p_phone_bidx, p_name_dob_bidx
  )
$$;

create function phi_api.update_patient(
  p_id uuid, p_name bytea, p_birth_date bytea, p_phone bytea, p_ehr_ref bytea,
  p_phone_bidx bytea, p_name_dob_bidx bytea
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  update phi.patients set
    name_ct = p_name, birth_date_ct = p_birth_date, phone_ct = p_phone,
    ehr_ref_ct = p_ehr_ref, phone_bidx = p_phone_bidx,
    name_dob_bidx = p_name_dob_bidx, updated_at = now()
  where id = p_id;
  return found;
end
$$;

create function phi_api.read_patients(p_ids uuid[], p_action text default 'view')
returns table (
  id uuid, name_ct bytea, birth_date_ct bytea, phone_ct bytea, ehr_ref_ct bytea,
  created_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
begin
  if not phi_api.may_read('demographics') then
    perform phi_api.deny(p_action, 'patient', p_ids);
    return;
  end if;
  select coalesce(array_agg(p.id), '{}') into found_ids
  from phi.patients p where p.id = any (p_ids);
  perform audit.record(
    p_action, 'patient', p_ids, found_ids,
    case when cardinality(found_ids) = cardinality(p_ids) then 'success'
      else 'not_found' end,
    cardinality(found_ids)
  );
  return query
    select p.id, p.name_ct, p.birth_date_ct, p.phone_ct, p.ehr_ref_ct,
           p.created_at, p.updated_at
    from phi.patients p where p.id = any (found_ids);
end
$$;

create function phi_api.find_patients(p_phone_bidx bytea, p_name_dob_bidx bytea)
returns table (
  id uuid, name_ct bytea, birth_date_ct bytea, phone_ct bytea, ehr_ref_ct bytea,
  created_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
begin
  if not phi_api.may_read('demographics') then
    perform phi_api.deny('search', 'patient', '{}');
    return;
  end if;
  select coalesce(array_agg(p.id), '{}') into found_ids
  from (
    select p.id from phi.patients p
    where (p_phone_bidx is not null and p.phone_bidx = p_phone_bidx)
       or (p_name_dob_bidx is not null and p.name_dob_bidx = p_name_dob_bidx)
    limit 50
  ) p;
  perform audit.record(
    'search', 'patient', found_ids, found_ids, 'success', cardinality(found_ids)
  );
  return query
    select p.id, p.name_ct, p.birth_date_ct, p.phone_ct, p.ehr_ref_ct,
           p.created_at, p.updated_at
    from phi.patients p where p.id = any (found_ids);
end
$$;

-- Appointments ----------------------------------------------------------------

create function phi_api.create_appointment(
  p_id uuid, p_patient uuid, p_provider uuid, p_starts timestamptz,
  p_ends timestamptz, p_reason bytea, p_status text
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into phi.appointments (
    id, practice_id, patient_id, provider_id, starts_at, ends_at, reason_ct, status
  ) values (
    p_id, perpetua.practice_id(), p_patient, p_provider, p_starts, p_ends,
    p_reason, coalesce(p_status, 'booked')
  )
$$;

create function phi_api.update_appointment(
  p_id uuid, p_provider uuid, p_starts timestamptz, p_ends timestamptz,
  p_reason bytea, p_status text
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  update phi.appointments set
    provider_id = p_provider, starts_at = p_starts, ends_at = p_ends,
    reason_ct = p_reason, status = p_status, updated_at = now()
  where id = p_id;
  return found;
end
$$;

create function phi_api.read_appointments(p_ids uuid[])
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
  if not phi_api.may_read('schedule') then
    perform phi_api.deny('view', 'appointment', p_ids);
    return;
  end if;
  select coalesce(array_agg(a.id), '{}'), coalesce(array_agg(a.patient_id), '{}')
    into found_ids, patients
  from phi.appointments a where a.id = any (p_ids);
  perform audit.record(
    'view', 'appointment', p_ids, patients,
    case when cardinality(found_ids) = cardinality(p_ids) then 'success'
      else 'not_found' end,
    cardinality(found_ids)
  );
  return query
    select a.id, a.patient_id, a.provider_id, a.starts_at, a.ends_at, a.reason_ct,
           a.status, a.created_at, a.updated_at
    from phi.appointments a where a.id = any (found_ids);
end
$$;

-- A provider's schedule over a time range, with each patient's encrypted name
-- when the role may see demographics. Export is a separate, separately permitted
-- action, recorded as such.
create function phi_api.schedule(
  p_provider uuid, p_from timestamptz, p_to timestamptz, p_export boolean
)
returns table (
  id uuid, patient_id uuid, provider_id uuid, starts_at timestamptz,
  ends_at timestamptz, reason_ct bytea, status text, patient_name_ct bytea
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  action text := case when p_export then 'export' else 'view' end;
  found_ids uuid[];
  patients uuid[];
begin
  if perpetua.permits('schedule', action) is null then
    perform phi_api.deny(action, 'schedule', '{}');
    return;
  end if;
  if p_to - p_from > interval '93 days' then
    raise exception 'schedule range longer than 93 days' using errcode = 'PV001';
  end if;
  select coalesce(array_agg(a.id), '{}'), coalesce(array_agg(a.patient_id), '{}')
    into found_ids, patients
  from phi.appointments a
  where (p_provider is null or a.provider_id = p_provider)
    and a.starts_at >= p_from and a.starts_at < p_to;
  perform audit.record(
    action, 'appointment', found_ids, patients, 'success', cardinality(found_ids)
  );
  return query
    select a.id, a.patient_id, a.provider_id, a.starts_at, a.ends_at, a.reason_ct,
           a.status, p.name_ct
    from phi.appointments a
    left join phi.patients p on p.id = a.patient_id
    where a.id = any (found_ids)
    order by a.starts_at, a.id;
end
$$;

-- Insurance coverage ----------------------------------------------------------

create function phi_api.upsert_coverage(
  p_id uuid, p_patient uuid, p_payer text, p_member_id bytea,
  p_member_bidx bytea, p_group bytea, p_plan_type text, p_copay_cents integer,
  p_deductible text, p_last_verified timestamptz
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  update phi.coverages set
    payer = p_payer, member_id_ct = p_member_id, member_id_bidx = p_member_bidx,
    group_number_ct = p_group, plan_type = p_plan_type, copay_cents = p_copay_cents,
    deductible_status = p_deductible, last_verified_at = p_last_verified,
    updated_at = now()
  where id = p_id and patient_id = p_patient;
  if not found then
    insert into phi.coverages (
      id, practice_id, patient_id, payer, member_id_ct, member_id_bidx,
      group_number_ct, plan_type, copay_cents, deductible_status, last_verified_at
    ) values (
      p_id, perpetua.practice_id(), p_patient, p_payer, p_member_id, p_member_bidx,
      p_group, p_plan_type, p_copay_cents, p_deductible, p_last_verified
    );
  end if;
end
$$;

create function phi_api.read_coverages(p_patient uuid, p_member_bidx bytea)
returns table (
  id uuid, patient_id uuid, payer text, member_id_ct bytea, group_number_ct bytea,
  plan_type text, copay_cents integer, deductible_status text,
  last_verified_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if not phi_api.may_read('insurance') then
    perform phi_api.deny(
      case when p_member_bidx is null then 'view' else 'search' end,
      'coverage', '{}'
    );
    return;
  end if;
  select coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.patient_id), '{}')
    into found_ids, patients
  from phi.coverages c
  where (p_patient is null or c.patient_id = p_patient)
    and (p_member_bidx is null or c.member_id_bidx = p_member_bidx)
    and (p_patient is not null or p_member_bidx is not null);
  perform audit.record(
    case when p_member_bidx is null then 'view' else 'search' end,
    'coverage', found_ids, patients, 'success', cardinality(found_ids)
  );
  return query
    select c.id, c.patient_id, c.payer, c.member_id_ct, c.group_number_ct,
           c.plan_type, c.copay_cents, c.deductible_status, c.last_verified_at,
           c.updated_at
    from phi.coverages c where c.id = any (found_ids);
end
$$;

-- Calls -------------------------------------------------------------------------

create function phi_api.create_call(
  p_id uuid, p_direction text, p_caller bytea, p_caller_bidx bytea,
  p_started timestamptz, p_duration integer, p_patient uuid
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into phi.calls (
    id, practice_id, direction, caller_number_ct, caller_number_bidx, started_at,
    duration_seconds, patient_id
  ) values (
    p_id, perpetua.practice_id(), p_direction, p_caller, p_caller_bidx, p_started,
    p_duration, p_patient
  )
$$;

create function phi_api.read_calls(
  p_ids uuid[], p_from timestamptz, p_to timestamptz
)
returns table (
  id uuid, direction text, caller_number_ct bytea, started_at timestamptz,
  duration_seconds integer, patient_id uuid
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if not phi_api.may_read('calls') then
    perform phi_api.deny('view', 'call', coalesce(p_ids, '{}'));
    return;
  end if;
  select coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.patient_id), '{}')
    into found_ids, patients
  from (
    select c.id, c.patient_id from phi.calls c
    where (p_ids is not null and c.id = any (p_ids))
       or (p_ids is null and c.started_at >= p_from and c.started_at < p_to)
    order by c.started_at desc
    limit 500
  ) c;
  perform audit.record(
    'view', 'call', coalesce(p_ids, found_ids), patients,
    case when p_ids is null or cardinality(found_ids) = cardinality(p_ids)
      then 'success' else 'not_found' end,
    cardinality(found_ids)
  );
  return query
    select c.id, c.direction, c.caller_number_ct, c.started_at, c.duration_seconds,
           c.patient_id
    from phi.calls c where c.id = any (found_ids)
    order by c.started_at desc;
end
$$;

-- Clinical documents: readable only when the practice enabled an agent needing them.
create function phi_api.read_clinical_documents(p_patient uuid)
returns table (id uuid, kind text, body_ct bytea, created_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
begin
  if perpetua.permits('clinical', 'view') is null
     and not perpetua.break_glass_open(p_patient) then
    perform phi_api.deny('view', 'clinical_document', '{}');
    return;
  end if;
  select coalesce(array_agg(d.id), '{}') into found_ids
  from phi.clinical_documents d where d.patient_id = p_patient;
  perform audit.record(
    'view', 'clinical_document', found_ids, array[p_patient], 'success',
    cardinality(found_ids)
  );
  return query
    select d.id, d.kind, d.body_ct, d.created_at
    from phi.clinical_documents d where d.id = any (found_ids);
end
$$;

-- Break-glass -------------------------------------------------------------------

create function phi_api.open_break_glass(
  p_patient uuid, p_reason text, p_minutes integer
) returns table (grant_id uuid, expires_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  made uuid := gen_random_uuid();
  ends timestamptz := now() + make_interval(mins => least(greatest(p_minutes, 1), 240));
begin
  insert into phi.break_glass_grants (
    id, practice_id, user_id, patient_id, reason, expires_at
  ) values (
    made, perpetua.practice_id(), perpetua.actor_id(), p_patient, p_reason, ends
  );
  return query select made, ends;
end
$$;

-- The patient access report: every recorded access to one patient's records.
-- Reading it is itself recorded.
create function audit_api.patient_access_report(p_patient uuid)
returns table (
  occurred_at timestamptz, actor_kind text, actor_id uuid, actor_role text,
  action text, resource_type text, purpose_of_use text, reason text,
  client_ip inet, outcome text, request_id text
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if perpetua.permits('audit_log', 'view') is null then
    perform phi_api.deny('view', 'audit_log', array[p_patient]);
    return;
  end if;
  perform audit.record('view', 'audit_log', array[p_patient], array[p_patient],
    'success', 0);
  return query
    select e.occurred_at, e.actor_kind, e.actor_id, e.actor_role, e.action,
           e.resource_type, e.purpose_of_use, e.reason, e.client_ip, e.outcome,
           e.request_id
    from audit.events e
    where e.practice_id = perpetua.practice_id()
      and e.patient_ids @> array[p_patient]
    order by e.occurred_at desc
    limit 1000;
end
$$;

-- Deletions and exports ------------------------------------------------------

create function phi_api.delete_record(p_type text, p_id uuid) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  case p_type
    when 'patient' then delete from phi.patients where id = p_id;
    when 'appointment' then delete from phi.appointments where id = p_id;
    when 'coverage' then delete from phi.coverages where id = p_id;
    when 'call' then delete from phi.calls where id = p_id;
    else raise exception 'unknown record type' using errcode = 'PV002';
  end case;
  return found;
end
$$;

-- A whole category of the practice's records, for an export. The rows go back
-- sealed; the service opens them after this transaction has committed.
create function phi_api.export_patients()
returns table (
  id uuid, name_ct bytea, birth_date_ct bytea, phone_ct bytea, ehr_ref_ct bytea,
  created_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
begin
  if perpetua.permits('demographics', 'export') is null then
    perform phi_api.deny('export', 'patient', '{}');
    return;
  end if;
  select coalesce(array_agg(p.id), '{}') into found_ids from phi.patients p;
  perform audit.record(
    'export', 'patient', found_ids, found_ids, 'success', cardinality(found_ids)
  );
  return query
    select p.id, p.name_ct, p.birth_date_ct, p.phone_ct, p.ehr_ref_ct,
           p.created_at, p.updated_at
    from phi.patients p where p.id = any (found_ids) order by p.created_at, p.id;
end
$$;

create function phi_api.export_coverages()
returns table (
  id uuid, patient_id uuid, payer text, member_id_ct bytea, group_number_ct bytea,
  plan_type text, copay_cents integer, deductible_status text,
  last_verified_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if perpetua.permits('insurance', 'export') is null then
    perform phi_api.deny('export', 'coverage', '{}');
    return;
  end if;
  select coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.patient_id), '{}')
    into found_ids, patients from phi.coverages c;
  perform audit.record(
    'export', 'coverage', found_ids, patients, 'success', cardinality(found_ids)
  );
  return query
    select c.id, c.patient_id, c.payer, c.member_id_ct, c.group_number_ct,
           c.plan_type, c.copay_cents, c.deductible_status, c.last_verified_at,
           c.updated_at
    from phi.coverages c where c.id = any (found_ids) order by c.id;
end
$$;

create function phi_api.export_calls(p_from timestamptz, p_to timestamptz)
returns table (
  id uuid, direction text, caller_number_ct bytea, started_at timestamptz,
  duration_seconds integer, patient_id uuid
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if perpetua.permits('calls', 'export') is null then
    perform phi_api.deny('export', 'call', '{}');
    return;
  end if;
  select coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.patient_id), '{}')
    into found_ids, patients
  from phi.calls c where c.started_at >= p_from and c.started_at < p_to;
  perform audit.record(
    'export', 'call', found_ids, patients, 'success', cardinality(found_ids)
  );
  return query
    select c.id, c.direction, c.caller_number_ct, c.started_at, c.duration_seconds,
           c.patient_id
    from phi.calls c where c.id = any (found_ids) order by c.started_at;
end
$$;

-- The practice's audit events over a range, for the owners and managers.
create function audit_api.events(
  p_from timestamptz, p_to timestamptz, p_export boolean
)
returns table (
  id uuid, occurred_at timestamptz, actor_kind text, actor_id uuid,
  actor_role text, action text, resource_type text, resource_ids uuid[],
  patient_ids uuid[], purpose_of_use text, reason text, client_ip inet,
  outcome text, request_id text
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  action text := case when p_export then 'export' else 'view' end;
begin
  if perpetua.permits('audit_log', action) is null then
    perform phi_api.deny(action, 'audit_log', '{}');
    return;
  end if;
  perform audit.record(action, 'audit_log', '{}', '{}', 'success', 0);
  return query
    select e.id, e.occurred_at, e.actor_kind, e.actor_id, e.actor_role, e.action,
           e.resource_type, e.resource_ids, e.patient_ids, e.purpose_of_use,
           e.reason, e.client_ip, e.outcome, e.request_id
    from audit.events e
    where e.practice_id = perpetua.practice_id()
      and e.occurred_at >= p_from and e.occurred_at < p_to
    order by e.occurred_at, e.id
    limit 100000;
end
$$;

revoke all on all functions in schema phi_api from public;
revoke all on all functions in schema audit_api from public;
grant execute on all functions in schema phi_api to perpetua_service;
grant execute on function audit_api.record_denied(text, text, uuid[])
  to perpetua_service;
grant execute on function audit_api.patient_access_report(uuid) to perpetua_service;
grant execute on function audit_api.events(timestamptz, timestamptz, boolean)
  to perpetua_service;
