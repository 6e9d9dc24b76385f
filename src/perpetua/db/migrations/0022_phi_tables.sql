-- PHI records: the minimum the agents need. Identifiers and free text are stored
-- encrypted by the service (AES-256-GCM, bound to practice, table, column and row);
-- exact-match lookups use keyed blind indexes. The service role has no privilege
-- on this schema at all: it reads and writes only through phi_api functions, which
-- record the audit event in the same transaction.

create schema phi;

-- A practice holds PHI only under an executed Business Associate Agreement.
create table app.baa_executions (
  id uuid primary key default gen_random_uuid(),
  practice_id uuid not null references app.practices (id),
  version text not null,
  document_sha256 text not null check (document_sha256 ~ '^[0-9a-f]{64}$'),
  executed_at timestamptz not null default now(),
  terminated_at timestamptz
);
create index baa_executions_practice on app.baa_executions (practice_id);
alter table app.baa_executions enable row level security;
alter table app.baa_executions force row level security;
create policy baa_visible on app.baa_executions for select
  using (practice_id = (select perpetua.practice_id()));
create policy baa_record on app.baa_executions for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) = 'system'
      or (select perpetua.practice_role()) = 'owner'
    )
  );
grant select on app.baa_executions to perpetua_service;

create function perpetua.baa_in_force(p_practice uuid) returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select exists (
    select 1 from app.baa_executions b
    where b.practice_id = p_practice and b.terminated_at is null
  )
$$;

create function perpetua.guard_phi_write() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
declare
  p uuid := coalesce(new.practice_id, old.practice_id);
begin
  if tg_op <> 'DELETE' and not perpetua.baa_in_force(p) then
    raise exception 'no PHI before a signed Business Associate Agreement'
      using errcode = 'PB001';
  end if;
  perform perpetua.assert_practice_writable(p);
  return coalesce(new, old);
end
$$;

create table phi.providers (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  display_name text not null check (length(display_name) between 1 and 200),
  npi text check (npi ~ '^[0-9]{10}$'),
  created_at timestamptz not null default now(),
  unique (practice_id, id)
);

create table phi.patients (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  name_ct bytea not null,
  birth_date_ct bytea not null,
  phone_ct bytea,
  ehr_ref_ct bytea,
  phone_bidx bytea,
  name_dob_bidx bytea not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (practice_id, id)
);
create index patients_phone on phi.patients (practice_id, phone_bidx);
create index patients_name_dob on phi.patients (practice_id, name_dob_bidx);

create table phi.appointments (
  id uuid primary key,
  practice_id uuid not null,
  patient_id uuid not null,
  provider_id uuid not null,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  reason_ct bytea,
  status text not null default 'booked' check (status in (
    'booked', 'confirmed', 'cancelled', 'no_show', 'completed'
  )),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (ends_at > starts_at),
  unique (practice_id, id),
  foreign key (practice_id, patient_id) references phi.patients (practice_id, id),
  foreign key (practice_id, provider_id) references phi.providers (practice_id, id)
);
create index appointments_day on phi.appointments (practice_id, provider_id, starts_at);
create index appointments_patient on phi.appointments (practice_id, patient_id);

create table phi.coverages (
  id uuid primary key,
  practice_id uuid not null,
  patient_id uuid not null,
  payer text not null check (length(payer) between 1 and 200),
  member_id_ct bytea not null,
  member_id_bidx bytea not null,
  group_number_ct bytea,
  plan_type text check (plan_type in ('HMO', 'PPO', 'EPO', 'POS', 'HDHP', 'Medicare',
    'Medicaid', 'other')),
  copay_cents integer check (copay_cents between 0 and 10000000),
  deductible_status text check (deductible_status in ('met', 'not_met', 'unknown')),
  last_verified_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (practice_id, id),
  foreign key (practice_id, patient_id) references phi.patients (practice_id, id)
);
create index coverages_patient on phi.coverages (practice_id, patient_id);
create index coverages_member on phi.coverages (practice_id, member_id_bidx);

create table phi.calls (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  direction text not null check (direction in ('inbound', 'outbound')),
  caller_number_ct bytea,
  caller_number_bidx bytea,
  started_at timestamptz not null,
  duration_seconds integer not null default 0 check (duration_seconds >= 0),
  patient_id uuid,
  created_at timestamptz not null default now(),
  unique (practice_id, id),
  foreign key (practice_id, patient_id) references phi.patients (practice_id, id)
);
create index calls_time on phi.calls (practice_id, started_at);

create table phi.clinical_documents (
  id uuid primary key,
  practice_id uuid not null,
  patient_id uuid not null,
  kind text not null check (length(kind) between 1 and 100),
  body_ct bytea not null,
  created_at timestamptz not null default now(),
  unique (practice_id, id),
  foreign key (practice_id, patient_id) references phi.patients (practice_id, id)
);

-- Break-glass: one member, one patient, a reason and a short window.
create table phi.break_glass_grants (
  id uuid primary key default gen_random_uuid(),
  practice_id uuid not null references app.practices (id),
  user_id uuid not null,
  patient_id uuid not null,
  reason text not null check (length(btrim(reason)) between 10 and 500),
  starts_at timestamptz not null default now(),
  expires_at timestamptz not null,
  foreign key (practice_id, patient_id) references phi.patients (practice_id, id)
);
create index break_glass_active on phi.break_glass_grants (practice_id, user_id, patient_id);

do $$
declare
  t text;
begin
  foreach t in array array[
    'providers', 'patients', 'appointments', 'coverages', 'calls',
    'clinical_documents', 'break_glass_grants'
  ] loop
    execute format('alter table phi.%I enable row level security', t);
    execute format('alter table phi.%I force row level security', t);
    execute format(
      'create trigger %I before insert or update or delete on phi.%I '
      'for each row execute function perpetua.guard_phi_write()',
      t || '_guard', t
    );
  end loop;
end
$$;

-- Whether the acting member may see this patient through break-glass right now:
-- only when the request itself declares the break-glass purpose.
create function perpetua.break_glass_open(p_patient uuid) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select perpetua.purpose_of_use() = 'BTG' and exists (
    select 1 from phi.break_glass_grants g
    where g.practice_id = perpetua.practice_id()
      and g.user_id = perpetua.actor_id()
      and g.patient_id = p_patient
      and now() between g.starts_at and g.expires_at
  )
$$;

-- A provider's own patients: those with an appointment on their schedule.
create function perpetua.is_own_patient(p_patient uuid) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select exists (
    select 1 from phi.appointments a
    where a.practice_id = perpetua.practice_id()
      and a.patient_id = p_patient
      and a.provider_id = any (perpetua.my_provider_ids())
  )
$$;

-- Whether the claims may act on one patient's rows of a category.
create function perpetua.may_touch(
  p_category text, p_action text, p_patient uuid
) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select case perpetua.permits(p_category, p_action)
    when 'all' then true
    when 'own' then perpetua.is_own_patient(p_patient)
    else p_action = 'view' and perpetua.break_glass_open(p_patient)
  end
$$;

create policy providers_read on phi.providers for select
  using (practice_id = (select perpetua.practice_id()));
create policy providers_write on phi.providers for all
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );

create policy patients_read on phi.patients for select
  using (
    practice_id = (select perpetua.practice_id())
    and perpetua.may_touch('demographics', 'view', id)
  );
create policy patients_create on phi.patients for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('demographics', 'create')) = 'all'
  );
create policy patients_update on phi.patients for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('demographics', 'update')) = 'all'
  );
create policy patients_delete on phi.patients for delete
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('demographics', 'delete')) = 'all'
  );

create policy appointments_read on phi.appointments for select
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.permits('schedule', 'view')) = 'all'
      or (
        (select perpetua.permits('schedule', 'view')) = 'own'
        and provider_id = any (perpetua.my_provider_ids())
      )
      or perpetua.break_glass_open(patient_id)
    )
  );
create policy appointments_create on phi.appointments for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('schedule', 'create')) = 'all'
  );
create policy appointments_update on phi.appointments for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('schedule', 'update')) = 'all'
  );
create policy appointments_delete on phi.appointments for delete
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('schedule', 'delete')) = 'all'
  );

create policy coverages_read on phi.coverages for select
  using (
    practice_id = (select perpetua.practice_id())
    and perpetua.may_touch('insurance', 'view', patient_id)
  );
create policy coverages_create on phi.coverages for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('insurance', 'create')) = 'all'
  );
create policy coverages_update on phi.coverages for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('insurance', 'update')) = 'all'
  );
create policy coverages_delete on phi.coverages for delete
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('insurance', 'delete')) = 'all'
  );

create policy calls_read on phi.calls for select
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.permits('calls', 'view')) = 'all'
      or (
        (select perpetua.permits('calls', 'view')) = 'own'
        and patient_id is not null
        and perpetua.is_own_patient(patient_id)
      )
    )
  );
-- Calls are created by agents and telephony webhooks; people do not invent calls.
create policy calls_create on phi.calls for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) in ('agent', 'system')
      or (select perpetua.permits('calls', 'create')) = 'all'
    )
  );
create policy calls_update on phi.calls for update
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) in ('agent', 'system')
      or (select perpetua.permits('calls', 'update')) = 'all'
    )
  );
create policy calls_delete on phi.calls for delete
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('calls', 'delete')) = 'all'
  );

create policy clinical_read on phi.clinical_documents for select
  using (
    practice_id = (select perpetua.practice_id())
    and perpetua.may_touch('clinical', 'view', patient_id)
  );
create policy clinical_create on phi.clinical_documents for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('clinical', 'create')) = 'all'
  );

create policy break_glass_own on phi.break_glass_grants for select
  using (
    practice_id = (select perpetua.practice_id())
    and (
      user_id = (select perpetua.actor_id())
      or (select perpetua.practice_role()) in ('owner', 'manager')
    )
  );
create policy break_glass_open on phi.break_glass_grants for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and user_id = (select perpetua.actor_id())
    and (select perpetua.actor_kind()) = 'user'
  );

-- Writes are audited by trigger: one event per row written, in the same
-- transaction as the write.
create function audit.record_write() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
declare
  r record := coalesce(new, old);
  patient uuid;
  category_type text := tg_argv[0];
begin
  patient := case
    when tg_table_name = 'patients' then r.id
    when tg_table_name in ('appointments', 'coverages', 'clinical_documents',
                           'break_glass_grants')
      then (to_jsonb(r) ->> 'patient_id')::uuid
    when tg_table_name = 'calls' then (to_jsonb(r) ->> 'patient_id')::uuid
  end;
  perform audit.record(
    case tg_op
      when 'INSERT' then
        case when tg_table_name = 'break_glass_grants' then 'break_glass'
        else 'create' end
      when 'UPDATE' then 'update'
      else 'delete'
    end,
    category_type,
    array[r.id],
    case when patient is null then '{}'::uuid[] else array[patient] end,
    'success',
    1
  );
  return null;
end
$$;

create trigger patients_audit after insert or update or delete on phi.patients
  for each row execute function audit.record_write('patient');
create trigger appointments_audit after insert or update or delete
  on phi.appointments
  for each row execute function audit.record_write('appointment');
create trigger coverages_audit after insert or update or delete on phi.coverages
  for each row execute function audit.record_write('coverage');
create trigger calls_audit after insert or update or delete on phi.calls
  for each row execute function audit.record_write('call');
create trigger clinical_audit after insert or update or delete
  on phi.clinical_documents
  for each row execute function audit.record_write('clinical_document');
create trigger break_glass_audit after insert on phi.break_glass_grants
  for each row execute function audit.record_write('break_glass_grant');

revoke all on all functions in schema perpetua from public;
grant execute on all functions in schema perpetua to perpetua_service;
