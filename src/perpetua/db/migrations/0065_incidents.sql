-- Incidents: an alert escalated (or a suspicion opened by hand) becomes an incident
-- with a discovery time, the four-factor risk assessment of 45 CFR 164.402, the
-- patients the suspected actor touched (computed from the audit log), the notice
-- Perpetua owes the practice under 164.410 and the breach-notification clocks.
--
-- Incidents are practice data: forced row-level security; the practice's owners
-- and managers (signed-in people, not tokens or agents) manage them; the overdue
-- job works as the system. Perpetua's staff carry no practice in their claims and
-- reach incidents only through the SECURITY DEFINER functions in incidents_api,
-- which return no PHI: ids, counts, dates and detector names.
--
-- No writable-practice trigger here: a practice whose trial has ended is still
-- owed breach handling, and its clocks still run.

create schema incidents;
create schema incidents_api;
grant usage on schema incidents to perpetua_service;
grant usage on schema incidents_api to perpetua_service;

create table incidents.incidents (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  alert_id uuid unique references monitor.alerts (id),
  detector text not null check (detector ~ '^[a-z][a-z0-9_]{0,62}$'),
  suspect_actor_kind text
    check (suspect_actor_kind in ('user', 'agent', 'api_token', 'staff', 'system')),
  suspect_actor_id uuid,
  -- The dates of the breach: the window in which the suspect's accesses count.
  window_from timestamptz,
  window_to timestamptz,
  discovered_at timestamptz not null,
  opened_at timestamptz not null,
  opened_by_kind text not null,
  opened_by uuid not null,
  status text not null default 'open' check (status in ('open', 'closed')),
  closed_at timestamptz,
  description text check (length(description) <= 4000),
  phi_kinds text[] not null default '{}' check (phi_kinds <@ array[
    'demographics', 'contact', 'insurance', 'appointments', 'calls', 'clinical'
  ]),
  affected_patient_ids uuid[] not null default '{}',
  affected_computed_at timestamptz,
  largest_state_count integer check (largest_state_count >= 0),
  -- The four factors of 164.402(2) and the conclusion drawn from them.
  nature_extent text check (length(nature_extent) <= 2000),
  unauthorized_person text check (length(unauthorized_person) <= 2000),
  acquired_or_viewed text check (length(acquired_or_viewed) <= 2000),
  mitigation text check (length(mitigation) <= 2000),
  conclusion text check (conclusion in ('low_probability', 'breach')),
  assessed_at timestamptz,
  assessed_by uuid,
  contact text check (length(contact) <= 500),
  -- When the practice says it gave each notice the rules require.
  individuals_notified_at timestamptz,
  hhs_notified_at timestamptz,
  media_notified_at timestamptz,
  hhs_logged_at timestamptz,
  check (window_from is null or window_to is null or window_from <= window_to)
);
create index incidents_practice on incidents.incidents (practice_id, opened_at desc);
create index incidents_open on incidents.incidents (status) where status = 'open';

-- Each notice Perpetua sent the practice: the outbox rows hold its delivery.
create table incidents.notices (
  id uuid primary key,
  incident_id uuid not null references incidents.incidents (id),
  practice_id uuid not null references app.practices (id),
  outbox_ids uuid[] not null,
  affected_count integer not null,
  queued_at timestamptz not null,
  queued_by_kind text not null,
  queued_by uuid not null
);
create index notices_incident on incidents.notices (incident_id);

-- An overdue clock, recorded once: the key makes a second escalation a no-op.
create table incidents.escalations (
  incident_id uuid not null references incidents.incidents (id),
  practice_id uuid not null references app.practices (id),
  clock text not null check (clock in (
    'practice_notice', 'individuals', 'hhs', 'media', 'hhs_annual_log'
  )),
  due_at timestamptz not null,
  escalated_at timestamptz not null,
  outbox_ids uuid[] not null default '{}',
  primary key (incident_id, clock)
);

alter table incidents.incidents enable row level security;
alter table incidents.incidents force row level security;
alter table incidents.notices enable row level security;
alter table incidents.notices force row level security;
alter table incidents.escalations enable row level security;
alter table incidents.escalations force row level security;

create policy incidents_managers on incidents.incidents for all
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) in ('owner', 'manager')
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy incidents_system on incidents.incidents for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');

create policy notices_managers on incidents.notices for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy notices_insert on incidents.notices for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) = 'system'
      or (
        (select perpetua.actor_kind()) = 'user'
        and (select perpetua.practice_role()) in ('owner', 'manager')
      )
    )
  );
create policy notices_system on incidents.notices for select
  using ((select perpetua.actor_kind()) = 'system');

create policy escalations_managers on incidents.escalations for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy escalations_system on incidents.escalations for all
  using ((select perpetua.actor_kind()) = 'system')
  with check ((select perpetua.actor_kind()) = 'system');

-- Incidents are created only by incidents_api.open_*; the affected patients are
-- written only by the audit-log computation; discovery never changes.
grant select on incidents.incidents to perpetua_service;
grant update (
  status, closed_at, description, phi_kinds, largest_state_count, nature_extent,
  unauthorized_person, acquired_or_viewed, mitigation, conclusion, assessed_at,
  assessed_by, contact, individuals_notified_at, hhs_notified_at,
  media_notified_at, hhs_logged_at, window_from, window_to
) on incidents.incidents to perpetua_service;
grant select on incidents.notices to perpetua_service;
grant select, insert on incidents.escalations to perpetua_service;

-- Claims switching for the definer functions below. The owner is bound by forced
-- row-level security too, so a staff request reads and writes as the system; the
-- caller's own claims come back before the function returns. Not executable by
-- the service role: only these functions switch identity.
create function incidents.as_system(p_practice uuid) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  perform set_config(
    'request.jwt.claims',
    (jsonb_build_object(
      'actor_kind', 'system',
      'sub', '00000000-0000-0000-0000-000000000000',
      'request_id', coalesce(perpetua.request_id(), 'incidents')
    ) || case when p_practice is null then '{}'::jsonb
         else jsonb_build_object('practice_id', p_practice) end)::text,
    true
  );
end
$$;

-- Who may manage incidents: a signed-in owner or manager (in their own practice,
-- which the policies enforce) or Perpetua's staff. Returns the kind.
create function incidents.manager_or_staff() returns text
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  c jsonb := perpetua.valid_claims();
begin
  if c ->> 'actor_kind' = 'staff' then
    return 'staff';
  end if;
  if c ->> 'actor_kind' = 'user' and c ->> 'practice_role' in ('owner', 'manager')
  then
    return 'member';
  end if;
  raise exception 'incidents are for owners, managers and staff'
    using errcode = 'PR403';
end
$$;

-- Open an incident from an alert. Idempotent: an alert already escalated returns
-- its incident, so a double click or a second staff member opens nothing new.
create function incidents_api.open_from_alert(
  p_id uuid, p_practice uuid, p_alert uuid, p_now timestamptz
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  saved text := current_setting('request.jwt.claims', true);
  c jsonb := perpetua.valid_claims();
  who text := incidents.manager_or_staff();
  a monitor.alerts%rowtype;
  made uuid;
begin
  if who = 'staff' then
    perform incidents.as_system(p_practice);
  end if;
  select * into a from monitor.alerts
  where id = p_alert and practice_id = p_practice
  for update;
  if not found then
    raise exception 'no such alert' using errcode = 'PI404';
  end if;
  if a.incident_id is not null then
    made := a.incident_id;
  elsif a.status = 'dismissed' then
    raise exception 'a dismissed alert is not escalated' using errcode = 'PI409';
  else
    insert into incidents.incidents (
      id, practice_id, alert_id, detector, suspect_actor_kind, suspect_actor_id,
      window_from, window_to, discovered_at, opened_at, opened_by_kind, opened_by,
      affected_patient_ids, affected_computed_at
    ) values (
      p_id, a.practice_id, a.id, a.detector,
      case when a.actor_kind in ('user', 'agent', 'api_token', 'staff', 'system')
        then a.actor_kind end,
      a.actor_id, a.first_event_at, a.last_event_at,
      -- Perpetua discovered the breach when its detector raised the alert.
      a.detected_at, p_now, c ->> 'actor_kind', (c ->> 'sub')::uuid,
      a.patient_ids, p_now
    );
    update monitor.alerts set status = 'escalated', incident_id = p_id
    where id = a.id;
    made := p_id;
  end if;
  perform set_config('request.jwt.claims', coalesce(saved, ''), true);
  return made;
end
$$;

-- Open an incident by hand, with the discovery time the person states.
create function incidents_api.open_by_hand(
  p_id uuid, p_practice uuid, p_discovered_at timestamptz, p_now timestamptz,
  p_suspect_kind text, p_suspect_id uuid, p_window_from timestamptz,
  p_window_to timestamptz, p_description text
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  saved text := current_setting('request.jwt.claims', true);
  c jsonb := perpetua.valid_claims();
  who text := incidents.manager_or_staff();
begin
  if p_discovered_at > p_now then
    raise exception 'discovery cannot be in the future' using errcode = 'PI422';
  end if;
  if who = 'staff' then
    -- Staff write no free text into a practice's record: it could only be PHI
    -- they should not hold.
    if p_description is not null then
      raise exception 'staff give no description' using errcode = 'PI422';
    end if;
    perform incidents.as_system(p_practice);
    if not exists (select 1 from app.practices where id = p_practice) then
      raise exception 'no such practice' using errcode = 'PI404';
    end if;
  end if;
  insert into incidents.incidents (
    id, practice_id, detector, suspect_actor_kind, suspect_actor_id, window_from,
    window_to, discovered_at, opened_at, opened_by_kind, opened_by, description
  ) values (
    p_id, p_practice, 'manual', p_suspect_kind, p_suspect_id, p_window_from,
    p_window_to, p_discovered_at, p_now, c ->> 'actor_kind', (c ->> 'sub')::uuid,
    p_description
  );
  perform set_config('request.jwt.claims', coalesce(saved, ''), true);
  return p_id;
end
$$;

-- The patients whose records the suspected actor touched within the window,
-- from the audit log. Owners and managers only (it reads the audit log), and the
-- reading is itself recorded.
create function incidents_api.compute_affected(p_incident uuid, p_now timestamptz)
returns integer
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  inc incidents.incidents%rowtype;
  ids uuid[];
begin
  if incidents.manager_or_staff() <> 'member'
     or perpetua.permits('audit_log', 'view') is null then
    raise exception 'the audit log is for owners and managers'
      using errcode = 'PR403';
  end if;
  select * into inc from incidents.incidents where id = p_incident for update;
  if not found then
    raise exception 'no such incident' using errcode = 'PI404';
  end if;
  if inc.suspect_actor_id is null or inc.window_from is null
     or inc.window_to is null then
    raise exception 'the incident names no actor and window' using errcode = 'PI422';
  end if;
  select coalesce(array_agg(distinct p order by p), '{}') into ids
  from audit.events e cross join lateral unnest(e.patient_ids) p
  where e.practice_id = inc.practice_id
    and e.actor_id = inc.suspect_actor_id
    and e.occurred_at >= inc.window_from
    and e.occurred_at <= inc.window_to
    and e.outcome = 'success';
  perform audit.record(
    'view', 'audit_log', array[p_incident], ids, 'success', cardinality(ids)
  );
  update incidents.incidents
  set affected_patient_ids = ids, affected_computed_at = p_now
  where id = p_incident;
  return cardinality(ids);
end
$$;

-- An alert's evidence: the audit events it names, by id, time and action. Read
-- through the audit log's door, so the read is recorded and needs audit_log view.
create function incidents_api.alert_evidence(p_alert uuid)
returns table (
  id uuid, occurred_at timestamptz, actor_kind text, actor_role text,
  action text, resource_type text, outcome text, patient_count integer
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  a monitor.alerts%rowtype;
begin
  select * into a from monitor.alerts al where al.id = p_alert;
  if not found then
    return;
  end if;
  if perpetua.permits('audit_log', 'view') is null then
    perform phi_api.deny('view', 'audit_log', a.event_ids);
    return;
  end if;
  perform audit.record(
    'view', 'audit_log', a.event_ids, a.patient_ids, 'success',
    cardinality(a.event_ids)
  );
  return query
    select e.id, e.occurred_at, e.actor_kind, e.actor_role, e.action,
           e.resource_type, e.outcome, cardinality(e.patient_ids)
    from audit.events e
    where e.practice_id = a.practice_id
      and e.id = any (a.event_ids)
      and e.occurred_at >= a.first_event_at
      and e.occurred_at <= a.last_event_at
    order by e.occurred_at, e.id;
end
$$;

-- What the notice to the practice is made of. Staff may send the notice but never
-- see this: the service composes the message and returns none of it to them.
create function incidents_api.notice_facts(p_incident uuid)
returns table (
  practice_id uuid, practice_name text, detector text, discovered_at timestamptz,
  window_from timestamptz, window_to timestamptz, description text,
  phi_kinds text[], affected_patient_ids uuid[], mitigation text, contact text,
  conclusion text
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  saved text := current_setting('request.jwt.claims', true);
  pid uuid;
begin
  if incidents.manager_or_staff() = 'staff' then
    -- Find the practice as the system, then act in it: the practice's own row
    -- is visible only to claims that name it.
    perform incidents.as_system(null);
    select i.practice_id into pid from incidents.incidents i where i.id = p_incident;
    if pid is not null then
      perform incidents.as_system(pid);
    end if;
  end if;
  return query
    select i.practice_id, p.name, i.detector, i.discovered_at, i.window_from,
           i.window_to, i.description, i.phi_kinds, i.affected_patient_ids,
           i.mitigation, i.contact, i.conclusion
    from incidents.incidents i join app.practices p on p.id = i.practice_id
    where i.id = p_incident;
  perform set_config('request.jwt.claims', coalesce(saved, ''), true);
end
$$;

-- Queue the notice to every owner and manager of the incident's practice and
-- record it. Returns the number of recipients.
create function incidents_api.queue_practice_notice(
  p_id uuid, p_incident uuid, p_subject text, p_body text, p_now timestamptz
) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  saved text := current_setting('request.jwt.claims', true);
  c jsonb := perpetua.valid_claims();
  who text := incidents.manager_or_staff();
  inc incidents.incidents%rowtype;
  sent uuid[] := '{}';
  made uuid;
  r record;
begin
  if who = 'staff' then
    perform incidents.as_system(null);
  end if;
  select * into inc from incidents.incidents where id = p_incident;
  if not found then
    raise exception 'no such incident' using errcode = 'PI404';
  end if;
  if who = 'staff' then
    perform incidents.as_system(inc.practice_id);
  end if;
  for r in
    select u.email from app.memberships m join app.users u on u.id = m.user_id
    where m.practice_id = inc.practice_id and m.role in ('owner', 'manager')
    order by u.email
  loop
    made := gen_random_uuid();
    insert into app.mail_outbox (
      id, practice_id, kind, to_address, subject, body_text, created_at,
      next_attempt_at
    ) values (
      made, inc.practice_id, 'incident_notice', r.email, p_subject, p_body, p_now,
      p_now
    );
    sent := sent || made;
  end loop;
  if cardinality(sent) = 0 then
    raise exception 'the practice has no owner or manager to notify'
      using errcode = 'PI409';
  end if;
  insert into incidents.notices (
    id, incident_id, practice_id, outbox_ids, affected_count, queued_at,
    queued_by_kind, queued_by
  ) values (
    p_id, p_incident, inc.practice_id, sent, cardinality(inc.affected_patient_ids),
    p_now, c ->> 'actor_kind', (c ->> 'sub')::uuid
  );
  perform set_config('request.jwt.claims', coalesce(saved, ''), true);
  return cardinality(sent);
end
$$;

-- The staff queue of incidents across practices: ids, counts, dates, detector
-- names and notice times; no description, assessment text or patient ids.
create function incidents_api.staff_incidents()
returns table (
  id uuid, practice_id uuid, alert_id uuid, detector text,
  status text, discovered_at timestamptz, opened_at timestamptz,
  affected_count integer, largest_state_count integer, conclusion text,
  notice_queued_at timestamptz, notice_delivered_at timestamptz,
  individuals_notified_at timestamptz, hhs_notified_at timestamptz,
  media_notified_at timestamptz, hhs_logged_at timestamptz, escalated text[]
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  saved text := current_setting('request.jwt.claims', true);
begin
  if perpetua.actor_kind() is distinct from 'staff' then
    raise exception 'the incident queue is for staff' using errcode = 'PR403';
  end if;
  perform incidents.as_system(null);
  return query
    select i.id, i.practice_id, i.alert_id, i.detector, i.status,
           i.discovered_at, i.opened_at, cardinality(i.affected_patient_ids),
           i.largest_state_count, i.conclusion,
           (select min(n.queued_at) from incidents.notices n
             where n.incident_id = i.id),
           (select min(o.sent_at) from incidents.notices n
              join app.mail_outbox o on o.id = any (n.outbox_ids)
             where n.incident_id = i.id),
           i.individuals_notified_at, i.hhs_notified_at, i.media_notified_at,
           i.hhs_logged_at,
           coalesce((select array_agg(e.clock order by e.clock)
                     from incidents.escalations e where e.incident_id = i.id),
                    '{}')
    from incidents.incidents i
    order by i.status, i.discovered_at desc
    limit 500;
  perform set_config('request.jwt.claims', coalesce(saved, ''), true);
end
$$;

revoke all on all functions in schema incidents from public;
revoke all on all functions in schema incidents_api from public;
grant execute on all functions in schema incidents_api to perpetua_service;
