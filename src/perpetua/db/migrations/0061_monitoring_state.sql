-- What the detectors keep between runs, and what they may read.
--
-- Detectors run inside the database as the owner (security definer functions in
-- schema monitor, called by the service with system claims), because the service
-- role has no privilege on phi tables or audit events and must not gain one. The
-- owner is bound by forced row-level security like everyone else, so each table a
-- detector reads gets a policy that opens it to exactly one caller: the owner's own
-- code acting with system claims that name the nil practice, which only the
-- monitor functions set (monitor.is_monitor()): a job acting as the system for a
-- real practice, or a phi_api read under such claims, gains nothing from these
-- policies. Detectors read ids and times only; no ciphertext leaves them.

create function monitor.is_monitor() returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select coalesce((select perpetua.actor_kind()) = 'system', false)
    and coalesce(
      (select perpetua.practice_id()) = '00000000-0000-0000-0000-000000000000',
      false
    )
    and current_user = (
      select pg_get_userbyid(relowner) from pg_class
      where oid = 'monitor.alerts'::regclass
    )
$$;

-- Detectors act with system claims naming no real practice (the nil id): only the
-- monitor policies open rows to them, and the practice-scoped policies on the
-- same tables fail on their first, cheapest test instead of evaluating per-row
-- role checks. Returns the claims it replaced, for the callers that restore them.
create function monitor.claim_no_practice() returns text
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  previous text := current_setting('request.jwt.claims', true);
begin
  perform set_config(
    'request.jwt.claims',
    jsonb_build_object(
      'actor_kind', 'system',
      'sub', '00000000-0000-0000-0000-000000000000',
      'request_id', coalesce(perpetua.request_id(), 'monitor'),
      'practice_id', '00000000-0000-0000-0000-000000000000'
    )::text,
    true
  );
  return previous;
end
$$;

create policy appointments_monitor on phi.appointments for select
  using ((select monitor.is_monitor()));
create policy calls_monitor on phi.calls for select
  using ((select monitor.is_monitor()));
create policy coverages_monitor on phi.coverages for select
  using ((select monitor.is_monitor()));
create policy patients_monitor on phi.patients for select
  using ((select monitor.is_monitor()));
create policy clinical_monitor on phi.clinical_documents for select
  using ((select monitor.is_monitor()));
create policy break_glass_monitor on phi.break_glass_grants for select
  using ((select monitor.is_monitor()));
create policy memberships_monitor on app.memberships for select
  using ((select monitor.is_monitor()));

-- A call found by the patient it concerns, for the explanation of an access.
create index calls_patient_time on phi.calls (practice_id, patient_id, started_at)
  where patient_id is not null;
create index coverages_patient_verified
  on phi.coverages (practice_id, patient_id, last_verified_at);
create index patients_created on phi.patients (practice_id, created_at);
create index memberships_provider on app.memberships (practice_id, provider_id)
  where provider_id is not null;
-- One actor's events of a day (volume, hours, bulk rows), found without reading
-- the whole practice's day.
create index events_actor_time on audit.events (actor_id, occurred_at);

-- Thresholds: defaults for every practice, overridden per practice.
create table monitor.threshold_defaults (
  name text primary key check (name ~ '^[a-z_]+\.[a-z_]+$'),
  value numeric not null,
  meaning text not null
);

insert into monitor.threshold_defaults (name, value, meaning) values
  ('explain.window_minutes', 120,
   'a call, coverage check, new registration or booking this close explains it'),
  ('explain.visit_days_before', 3, 'days before a visit that preparing it explains'),
  ('explain.visit_days_after', 14, 'days after a visit that follow-up explains'),
  ('explain.care_days', 90, 'a provider''s own patients: visits this close'),
  ('volume.factor', 3, 'times the larger of own and role daily average'),
  ('volume.min_patients', 40, 'distinct patients in a day before a spike counts'),
  ('volume.baseline_days', 14, 'days of history in the volume baseline'),
  ('hours.baseline_days', 28, 'days of history in the hours baseline'),
  ('hours.min_history', 40, 'accesses in the baseline before hours are judged'),
  ('hours.rare_share', 0.01, 'share of own accesses at that hour (+-1) that is rare'),
  ('hours.min_events', 3, 'accesses at rare hours in a day before an alert'),
  ('bulk.export_rows', 50, 'rows in one export'),
  ('bulk.result_rows', 200, 'rows in one result'),
  ('bulk.day_rows', 1000, 'rows read by one actor in a day'),
  ('signin.user_failures', 5, 'failed sign-ins or second factors for one account'),
  ('signin.ip_failures', 10, 'failed sign-ins from one address, any account'),
  ('signin.window_minutes', 15, 'window for failure bursts'),
  ('signin.hop_minutes', 60, 'two networks within this time: impossible travel'),
  ('signin.min_history', 3, 'known sign-ins before a new network counts'),
  ('denied.count', 5, 'denied accesses by one actor within the window'),
  ('denied.window_minutes', 15, 'window for denied bursts');

create table monitor.thresholds (
  practice_id uuid not null references app.practices (id),
  name text not null references monitor.threshold_defaults (name),
  value numeric not null,
  updated_at timestamptz not null default now(),
  primary key (practice_id, name)
);
alter table monitor.thresholds enable row level security;
alter table monitor.thresholds force row level security;
create policy thresholds_system on monitor.thresholds for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');
create policy thresholds_practice_read on monitor.thresholds for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy thresholds_owner_set on monitor.thresholds for all
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
  );
grant select on monitor.threshold_defaults to perpetua_service;
grant select, insert, delete on monitor.thresholds to perpetua_service;
grant update (value, updated_at) on monitor.thresholds to perpetua_service;

create function monitor.threshold(p_practice uuid, p_name text) returns numeric
language sql stable
set search_path = pg_catalog
as $$
  select coalesce(
    (select t.value from monitor.thresholds t
      where t.practice_id = p_practice and t.name = p_name),
    (select d.value from monitor.threshold_defaults d where d.name = p_name)
  )
$$;

-- Keyed blind-index tags (crypto/blind_index.py) of what a member and a patient
-- might share: surname, full name, phone, address. Computed by the service with
-- the practice's blind-index key, so the database compares tags, never values.
create table monitor.member_tags (
  practice_id uuid not null references app.practices (id),
  user_id uuid not null references app.users (id),
  kind text not null check (kind in ('name', 'surname', 'phone', 'address')),
  tag bytea not null check (length(tag) = 18),
  primary key (practice_id, user_id, kind, tag)
);
create index member_tags_tag on monitor.member_tags (practice_id, kind, tag);

create table monitor.patient_tags (
  practice_id uuid not null references app.practices (id),
  patient_id uuid not null,
  kind text not null check (kind in ('name', 'surname', 'phone', 'address')),
  tag bytea not null check (length(tag) = 18),
  primary key (practice_id, patient_id, kind, tag)
);
create index patient_tags_tag on monitor.patient_tags (practice_id, kind, tag);

alter table monitor.member_tags enable row level security;
alter table monitor.member_tags force row level security;
alter table monitor.patient_tags enable row level security;
alter table monitor.patient_tags force row level security;
create policy member_tags_system on monitor.member_tags for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');
create policy patient_tags_system on monitor.patient_tags for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');
grant select, insert, delete on monitor.member_tags to perpetua_service;
grant select, insert, delete on monitor.patient_tags to perpetua_service;

-- Per-detector high-water mark: each run scans from here (less a margin for
-- transactions that commit late) up to the run's time.
create table monitor.detector_state (
  detector text primary key,
  scanned_to timestamptz not null,
  last_run_at timestamptz not null,
  last_findings integer not null default 0
);
alter table monitor.detector_state enable row level security;
alter table monitor.detector_state force row level security;
create policy detector_state_system on monitor.detector_state for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');
grant select on monitor.detector_state to perpetua_service;

-- Each actor's habits, recomputed once a day from the days before it: how many
-- distinct patients a day they usually open, and at which hours they work.
create table monitor.baselines (
  practice_id uuid not null,
  actor_kind text not null,
  actor_id uuid not null,
  actor_role text,
  computed_for date not null,
  active_days integer not null,
  daily_patients numeric not null,
  hour_counts integer[] not null check (cardinality(hour_counts) = 24),
  -- Hours (index = hour + 1) that are rare for this actor under the practice's
  -- thresholds on the day computed; null without enough history.
  rare_hours boolean[],
  primary key (practice_id, actor_kind, actor_id)
);
create table monitor.baseline_runs (
  computed_for date primary key,
  computed_at timestamptz not null
);

-- Networks each account and API token has been seen on, learned as they appear,
-- so that "new network" is one index probe instead of a scan of history.
create table monitor.known_networks (
  subject_kind text not null check (subject_kind in ('user', 'api_token')),
  subject_id uuid not null,
  network cidr not null,
  device text,
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  primary key (subject_kind, subject_id, network)
);

do $$
declare
  t text;
begin
  foreach t in array array['baselines', 'baseline_runs', 'known_networks'] loop
    execute format('alter table monitor.%I enable row level security', t);
    execute format('alter table monitor.%I force row level security', t);
    execute format(
      'create policy %I on monitor.%I for all '
      'using ((select monitor.is_monitor())) with check ((select monitor.is_monitor()))',
      t || '_monitor', t
    );
  end loop;
end
$$;

-- The network an address belongs to, for "same or new network": a /24 for IPv4, a
-- /48 for IPv6 (one site's allocation).
create function monitor.network_of(p_ip inet) returns cidr
language sql immutable parallel safe
set search_path = pg_catalog
as $$
  select case
    when p_ip is null then null
    when family(p_ip) = 4 then network(set_masklen(p_ip, 24))::cidr
    else network(set_masklen(p_ip, 48))::cidr
  end
$$;

-- A wider network, for "far apart": a /16 for IPv4, a /32 for IPv6.
create function monitor.region_of(p_ip inet) returns cidr
language sql immutable parallel safe
set search_path = pg_catalog
as $$
  select case
    when p_ip is null then null
    when family(p_ip) = 4 then network(set_masklen(p_ip, 16))::cidr
    else network(set_masklen(p_ip, 32))::cidr
  end
$$;

-- What every detector returns; monitor.alerts takes these columns as they are.
create type monitor.finding as (
  practice_id uuid,
  detector text,
  severity text,
  actor_kind text,
  actor_id uuid,
  patient_ids uuid[],
  event_ids uuid[],
  summary text,
  first_event_at timestamptz,
  last_event_at timestamptz,
  dedup_key text
);

-- Owners and managers of a practice, to whom an alert is emailed.
create function monitor.alert_recipients(p_practice uuid)
returns table (email text)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  previous text;
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'alert recipients are for the system' using errcode = 'PR403';
  end if;
  previous := monitor.claim_no_practice();
  return query
    select u.email from app.memberships m join app.users u on u.id = m.user_id
    where m.practice_id = p_practice and m.role in ('owner', 'manager')
    order by u.email;
  perform set_config('request.jwt.claims', previous, true);
end
$$;
revoke all on function monitor.alert_recipients(uuid) from public;
grant execute on function monitor.alert_recipients(uuid) to perpetua_service;

-- Members whose name has no tag yet, for the job that tags them. Member names are
-- account data, not PHI; the tags let the detectors compare them with patients'.
create function monitor.members_to_tag(p_limit integer)
returns table (practice_id uuid, user_id uuid, full_name text)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
#variable_conflict use_column
declare
  previous text;
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'member tagging is for the system' using errcode = 'PR403';
  end if;
  previous := monitor.claim_no_practice();
  return query
    select m.practice_id, m.user_id, u.full_name
    from app.memberships m join app.users u on u.id = m.user_id
    where not exists (
      select 1 from monitor.member_tags t
      where t.practice_id = m.practice_id and t.user_id = m.user_id
        and t.kind = 'name'
    )
    order by m.created_at
    limit p_limit;
  perform set_config('request.jwt.claims', previous, true);
end
$$;
revoke all on function monitor.members_to_tag(integer) from public;
grant execute on function monitor.members_to_tag(integer) to perpetua_service;

-- Whether a user is a member of a practice, for the command that tags a member's
-- phone and address (the system sees no memberships otherwise).
create function monitor.is_member(p_practice uuid, p_user uuid) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  previous text;
  found_one boolean;
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'membership checks are for the system' using errcode = 'PR403';
  end if;
  previous := monitor.claim_no_practice();
  found_one := exists (
    select 1 from app.memberships m
    where m.practice_id = p_practice and m.user_id = p_user
  );
  perform set_config('request.jwt.claims', previous, true);
  return found_one;
end
$$;
revoke all on function monitor.is_member(uuid, uuid) from public;
grant execute on function monitor.is_member(uuid, uuid) to perpetua_service;
