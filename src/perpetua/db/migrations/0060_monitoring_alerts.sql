-- Monitoring alerts: what the detectors found, shared by the detectors (which raise
-- them as the system) and the console (where a practice's owners and managers
-- acknowledge, dismiss or escalate them). An alert carries ids, counts, times and a
-- detector's name as evidence, never PHI: the audit events it points at are the
-- evidence, readable only through the audit log's own door.

create schema monitor;
grant usage on schema monitor to perpetua_service;

create table monitor.alerts (
  id uuid primary key default gen_random_uuid(),
  practice_id uuid not null references app.practices (id),
  detector text not null check (detector ~ '^[a-z][a-z0-9_]{0,62}$'),
  severity text not null check (severity in ('low', 'medium', 'high', 'critical')),
  actor_kind text,
  actor_id uuid,
  patient_ids uuid[] not null default '{}',
  event_ids uuid[] not null default '{}',
  summary text not null check (length(summary) between 1 and 500),
  first_event_at timestamptz not null,
  last_event_at timestamptz not null,
  detected_at timestamptz not null,
  status text not null default 'open'
    check (status in ('open', 'acknowledged', 'dismissed', 'escalated')),
  -- No foreign key: incidents arrive in a later migration.
  incident_id uuid,
  dedup_key text not null check (length(dedup_key) between 1 and 300),
  unique (practice_id, dedup_key),
  check (last_event_at >= first_event_at)
);
create index alerts_practice_open on monitor.alerts (practice_id, detected_at desc);
create index alerts_status on monitor.alerts (status, detected_at desc);

alter table monitor.alerts enable row level security;
alter table monitor.alerts force row level security;

-- The detectors and the staff queue act as the system, across practices.
create policy alerts_system_all on monitor.alerts for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');

-- A practice's owners and managers see and triage their own alerts; the column
-- grants below keep their updates to status and incident.
create policy alerts_practice_read on monitor.alerts for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy alerts_practice_triage on monitor.alerts for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );

grant select, insert on monitor.alerts to perpetua_service;
grant update (status, incident_id) on monitor.alerts to perpetua_service;

-- Perpetua's own staff see the queue across practices without PHI: counts, not
-- patient or event ids.
create function monitor.staff_queue()
returns table (
  alert_id uuid,
  practice_id uuid,
  detector text,
  severity text,
  status text,
  patient_count integer,
  event_count integer,
  detected_at timestamptz
)
language plpgsql stable security definer
set search_path = pg_catalog
as $$
declare
  c jsonb := perpetua.valid_claims();
begin
  if c is null or c ->> 'actor_kind' <> 'staff' then
    raise exception 'the alert queue is for staff' using errcode = 'PR403';
  end if;
  -- The owner works under forced row-level security too: read as the system.
  perform set_config(
    'request.jwt.claims',
    jsonb_build_object(
      'actor_kind', 'system',
      'sub', '00000000-0000-0000-0000-000000000000',
      'request_id', 'monitor-staff-queue'
    )::text,
    true
  );
  return query
    select a.id, a.practice_id, a.detector, a.severity, a.status,
           cardinality(a.patient_ids), cardinality(a.event_ids), a.detected_at
    from monitor.alerts a
    order by a.detected_at desc;
  perform set_config('request.jwt.claims', c::text, true);
end
$$;

revoke all on function monitor.staff_queue() from public;
grant execute on function monitor.staff_queue() to perpetua_service;
