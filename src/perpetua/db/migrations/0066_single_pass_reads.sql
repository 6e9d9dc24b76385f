-- The reads of one record behind the API's hottest paths cost less, deciding and
-- recording exactly what they did before:
--
-- * phi_api.may_read becomes PL/pgSQL without a SET clause. As an SQL function
--   with SET it was planned again on every call; the reasons 0024 gives for the
--   other helpers hold here too (schema-qualified names, caller's rights).
-- * The appointment, patient and coverage reads visit their table once. They
--   used to select the ids, record the event, then select the rows again by id,
--   which ran the row-level policies twice. Now the rows the policies let through
--   are kept in a local array, the event is recorded, and only then are they
--   returned: a failed audit write still aborts the function before any row
--   leaves it.

create or replace function phi_api.may_read(p_category text) returns boolean
language plpgsql stable
as $$
begin
  return perpetua.permits(p_category, 'view') is not null
    or coalesce(perpetua.purpose_of_use() = 'BTG', false);
end
$$;

create or replace function phi_api.read_appointments(p_ids uuid[])
returns table (
  id uuid, patient_id uuid, provider_id uuid, starts_at timestamptz,
  ends_at timestamptz, reason_ct bytea, status text, created_at timestamptz,
  updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found phi.appointments[];
  patients uuid[];
begin
  if not phi_api.may_read('schedule') then
    perform phi_api.deny('view', 'appointment', p_ids);
    return;
  end if;
  select coalesce(array_agg(a), '{}'), coalesce(array_agg(a.patient_id), '{}')
    into found, patients
  from phi.appointments a where a.id = any (p_ids);
  perform audit.record(
    'view', 'appointment', p_ids, patients,
    case when cardinality(found) = cardinality(p_ids) then 'success'
      else 'not_found' end,
    cardinality(found)
  );
  return query
    select a.id, a.patient_id, a.provider_id, a.starts_at, a.ends_at, a.reason_ct,
           a.status, a.created_at, a.updated_at
    from unnest(found) a;
end
$$;

create or replace function phi_api.read_patients(
  p_ids uuid[], p_action text default 'view'
)
returns table (
  id uuid, name_ct bytea, birth_date_ct bytea, phone_ct bytea, ehr_ref_ct bytea,
  created_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found phi.patients[];
  found_ids uuid[];
begin
  if not phi_api.may_read('demographics') then
    perform phi_api.deny(p_action, 'patient', p_ids);
    return;
  end if;
  select coalesce(array_agg(p), '{}'), coalesce(array_agg(p.id), '{}')
    into found, found_ids
  from phi.patients p where p.id = any (p_ids);
  perform audit.record(
    p_action, 'patient', p_ids, found_ids,
    case when cardinality(found) = cardinality(p_ids) then 'success'
      else 'not_found' end,
    cardinality(found)
  );
  return query
    select p.id, p.name_ct, p.birth_date_ct, p.phone_ct, p.ehr_ref_ct,
           p.created_at, p.updated_at
    from unnest(found) p;
end
$$;

create or replace function phi_api.read_coverages(
  p_patient uuid, p_member_bidx bytea
)
returns table (
  id uuid, patient_id uuid, payer text, member_id_ct bytea, group_number_ct bytea,
  plan_type text, copay_cents integer, deductible_status text,
  last_verified_at timestamptz, updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found phi.coverages[];
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
  select coalesce(array_agg(c), '{}'), coalesce(array_agg(c.id), '{}'),
         coalesce(array_agg(c.patient_id), '{}')
    into found, found_ids, patients
  from phi.coverages c
  where (p_patient is null or c.patient_id = p_patient)
    and (p_member_bidx is null or c.member_id_bidx = p_member_bidx)
    and (p_patient is not null or p_member_bidx is not null);
  perform audit.record(
    case when p_member_bidx is null then 'view' else 'search' end,
    'coverage', found_ids, patients, 'success', cardinality(found)
  );
  return query
    select c.id, c.patient_id, c.payer, c.member_id_ct, c.group_number_ct,
           c.plan_type, c.copay_cents, c.deductible_status, c.last_verified_at,
           c.updated_at
    from unnest(found) c;
end
$$;
