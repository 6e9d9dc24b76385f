-- The detectors over long windows in one pass each: a backfill scan of a month
-- reads each event a bounded number of times instead of once per active
-- member-day. What every detector finds, and the dedup keys it builds, are as in
-- 0062; only how the rows are reached changes.
--
-- - The day-by-actor detectors (volume_spike, unusual_hours, bulk_access) aggregate
--   the window's days in one hashed pass and only then read the evidence ids of
--   the few actor-days that cross a threshold, through events_actor_time. Before,
--   each active actor-day went back to the index for the whole day, which read
--   each actor's history once per day and grew with the square of the window.
--   A tick's short window names a few actors: their days are read through that
--   index instead, so a tick costs what its actors did today, not the practice.
-- - unusual_hours reads only the events of members whose baseline marks some
--   hour as rare: with no rare hour there is nothing it could find.
-- - The explanations of an access (visits, bookings, calls, coverage checks,
--   registrations, a provider's own patients) become one set of time ranges per
--   patient, tested by one anti-join instead of five, and the function that
--   lists unexplained accesses is plain SQL so that the planner inlines it
--   instead of materializing every access first.
-- - The baselines are one pass for the hours and one for the daily patients.
-- - The detectors of rare events (break-glass, refusals, API tokens) find them
--   through partial indexes instead of reading every event of the window.
-- - repeated_denied looks up each practice's window once and pairs refusals by a
--   join, instead of a threshold lookup for every pair.
-- - shared_identity and coworker_record ask whether an access is explained only
--   after its tags matched; before, the planner could ask it of every access.

-- Each partial index holds only the rare rows its detector looks for, so the
-- audit log's insert path pays for them only on those rows.
create index events_refused_time on audit.events (occurred_at)
  where outcome in ('denied', 'not_found');
create index events_glass_time on audit.events (occurred_at)
  where action = 'break_glass' or purpose_of_use = 'BTG';
create index events_token_time on audit.events (occurred_at)
  where actor_kind = 'api_token';

-- The day-long aggregates below hash a month of events at once; more memory
-- keeps the hash tables off disk. Ticks run one at a time (advisory lock).
-- Limitation: a backfill over a very long window may still spill to disk; it
-- is then slower, never wrong.

-- Everything that explains a member's access to a patient, as times: an access
-- at time t is explained by a visit when t lies from explain.visit_days_before
-- before its start to explain.visit_days_after after its end ('visit'), by a
-- booking, call, coverage check or registration within explain.window_minutes
-- ('near'), and, for the provider's own member only (user_id), by a visit within
-- explain.care_days ('care'). These are the conditions of monitor.explained_by,
-- turned around so that one anti-join tests an access against all of them; the
-- two must say the same. Plain SQL without a SET clause so that it is inlined
-- into its callers, which fix the search path; every name is schema-qualified.
-- Limitation: day-long margins are added to the explanation's time instead of
-- subtracted from the access's; under a session time zone with daylight saving
-- the two readings can differ by that hour at the very edge of a margin.
create function monitor.explanations()
returns table (
  practice_id uuid, patient_id uuid, user_id uuid, kind text, at_lo timestamptz,
  at_hi timestamptz
)
language sql stable
as $$
  select a.practice_id, a.patient_id, null::uuid, 'visit', a.starts_at, a.ends_at
  from phi.appointments a
  union all
  select a.practice_id, a.patient_id, null::uuid, 'near', a.created_at, a.created_at
  from phi.appointments a
  union all
  select c.practice_id, c.patient_id, null::uuid, 'near', c.started_at, c.started_at
  from phi.calls c
  where c.patient_id is not null
  union all
  select v.practice_id, v.patient_id, null::uuid, 'near', v.last_verified_at,
    v.last_verified_at
  from phi.coverages v
  where v.last_verified_at is not null
  union all
  select v.practice_id, v.patient_id, null::uuid, 'near', v.created_at, v.created_at
  from phi.coverages v
  union all
  select p.practice_id, p.id, null::uuid, 'near', p.created_at, p.created_at
  from phi.patients p
  union all
  select m.practice_id, a.patient_id, m.user_id, 'care', a.starts_at, a.starts_at
  from app.memberships m
  join phi.appointments a
    on a.practice_id = m.practice_id and a.provider_id = m.provider_id
  where m.provider_id is not null
$$;

-- Accesses to patients in the window that nothing explains (see
-- monitor.explanations). Plain SQL so that the detectors' aggregates run over it
-- without first storing every access. The explain.* thresholds are read as
-- monitor.threshold reads them (a practice's own value, else the default), by a
-- join with the few practices that set their own instead of a lookup per access.
drop function monitor.unexplained_accesses(timestamptz, timestamptz);
create function monitor.unexplained_accesses(p_from timestamptz, p_to timestamptz)
returns table (
  id uuid, practice_id uuid, occurred_at timestamptz, actor_id uuid,
  patient_id uuid
)
language sql stable
as $$
  with defaults as (
    select
      max(d.value) filter (where d.name = 'explain.window_minutes') as w,
      max(d.value) filter (where d.name = 'explain.visit_days_before') as before,
      max(d.value) filter (where d.name = 'explain.visit_days_after') as after,
      max(d.value) filter (where d.name = 'explain.care_days') as care
    from monitor.threshold_defaults d
  ),
  own as (
    select t.practice_id,
      max(t.value) filter (where t.name = 'explain.window_minutes') as w,
      max(t.value) filter (where t.name = 'explain.visit_days_before') as before,
      max(t.value) filter (where t.name = 'explain.visit_days_after') as after,
      max(t.value) filter (where t.name = 'explain.care_days') as care
    from monitor.thresholds t
    where t.name like 'explain.%'
    group by t.practice_id
  ),
  -- A practice that set any of them gets a row with all four, filled from the
  -- defaults; every other practice uses the defaults' row.
  own_th as (
    select o.practice_id,
      make_interval(mins => coalesce(o.w, d.w)::int) as w,
      make_interval(days => coalesce(o.before, d.before)::int) as before,
      make_interval(days => coalesce(o.after, d.after)::int) as after,
      make_interval(days => coalesce(o.care, d.care)::int) as care
    from own o cross join defaults d
  ),
  default_th as (
    select make_interval(mins => d.w::int) as w,
      make_interval(days => d.before::int) as before,
      make_interval(days => d.after::int) as after,
      make_interval(days => d.care::int) as care
    from defaults d
  ),
  -- Each explanation's range, widened by its practice's thresholds: the few
  -- explanations are joined with the thresholds, not the many accesses.
  explained as (
    select x.practice_id, x.patient_id, x.user_id,
      x.at_lo - case x.kind
        when 'visit' then coalesce(o.before, d.before)
        when 'near' then coalesce(o.w, d.w)
        else coalesce(o.care, d.care)
      end as lo,
      x.at_hi + case x.kind
        when 'visit' then coalesce(o.after, d.after)
        when 'near' then coalesce(o.w, d.w)
        else coalesce(o.care, d.care)
      end as hi
    from monitor.explanations() x
    left join own_th o on o.practice_id = x.practice_id
    cross join default_th d
  )
  select ev.id, ev.practice_id, ev.occurred_at, ev.actor_id, ev.patient_id
  from (
    -- unnest in the select list: one projection step per event, not a join.
    select e.id, e.practice_id, e.occurred_at, e.actor_id,
      unnest(e.patient_ids) as patient_id
    from audit.events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.actor_kind = 'user' and e.outcome = 'success'
      and e.action in ('view', 'playback')
      and e.purpose_of_use <> 'BTG'
  ) ev
  where not exists (
    select 1 from explained x
    where x.practice_id = ev.practice_id and x.patient_id = ev.patient_id
      and ev.occurred_at between x.lo and x.hi
      and (x.user_id is null or x.user_id = ev.actor_id)
  )
$$;

create or replace function monitor.detect_unexplained_access(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
as $$
#variable_conflict use_column
begin
  return query
    select u.practice_id, 'unexplained_access', 'medium', 'user', u.actor_id,
      (array_agg(distinct u.patient_id))[1:100], (array_agg(distinct u.id))[1:100],
      format(
        '%s access(es) to %s patient(s) with no appointment, call, coverage '
        'check or care assignment around that time', count(distinct u.id),
        count(distinct u.patient_id)
      ),
      min(u.occurred_at), max(u.occurred_at),
      -- One alert per member and hour: a spree is one alert, not hundreds.
      format('unexplained_access:%s:%s', u.actor_id,
        to_char(u.hour, 'YYYY-MM-DD"T"HH24'))
    from (
      select a.*, date_trunc('hour', a.occurred_at at time zone 'UTC') as hour
      from monitor.unexplained_accesses(p_from, p_to) a
    ) u
    group by u.practice_id, u.actor_id, u.hour;
end
$$;

-- Recompute every actor's habits from the days before p_day; once per day. One
-- pass counts accesses by actor, day and hour; a second counts each actor's
-- distinct patients a day, over the volume baseline's days only.
create or replace function monitor.refresh_baselines(p_day date) returns integer
language plpgsql volatile
set search_path = pg_catalog
set work_mem = '256MB'
as $$
declare
  n integer;
  span constant integer := 28;
  -- The longest volume look-back any practice asks for bounds the second pass.
  volume_span integer := least(span, (
    select greatest(
      max(d.value),
      coalesce(
        (select max(t.value) from monitor.thresholds t
          where t.name = 'volume.baseline_days'),
        0
      )
    )::int
    from monitor.threshold_defaults d where d.name = 'volume.baseline_days'
  ));
begin
  if exists (select 1 from monitor.baseline_runs r where r.computed_for = p_day) then
    return 0;
  end if;
  delete from monitor.baselines;
  insert into monitor.baselines (
    practice_id, actor_kind, actor_id, actor_role, computed_for, active_days,
    daily_patients, hour_counts
  )
  with by_hour as materialized (
    select e.practice_id, e.actor_kind, e.actor_id,
      (e.occurred_at at time zone 'UTC')::date as day,
      extract(hour from e.occurred_at at time zone 'UTC')::int as hr,
      count(*)::int as n, max(e.actor_role) as role
    from audit.events e
    where e.occurred_at >= (p_day - span)::timestamp at time zone 'UTC'
      and e.occurred_at < p_day::timestamp at time zone 'UTC'
      and e.actor_kind in ('user', 'agent', 'api_token')
      and e.outcome = 'success'
    group by 1, 2, 3, 4, 5
  ),
  th as materialized (
    select x.practice_id,
      p_day - least(span, monitor.threshold(x.practice_id, 'hours.baseline_days')
        ::int) as hours_from,
      p_day - least(span, monitor.threshold(x.practice_id, 'volume.baseline_days')
        ::int) as volume_from
    from (select distinct b.practice_id from by_hour b) x
  ),
  hours as (
    select b.practice_id, b.actor_kind, b.actor_id, b.hr, sum(b.n)::int as n
    from by_hour b join th on th.practice_id = b.practice_id
    where b.day >= th.hours_from
    group by 1, 2, 3, 4
  ),
  actors as (
    select b.practice_id, b.actor_kind, b.actor_id, max(b.role) as role
    from by_hour b group by 1, 2, 3
  ),
  hist as (
    select a.practice_id, a.actor_kind, a.actor_id, a.role,
      array_agg(coalesce(h.n, 0) order by g.hr) as hour_counts
    from actors a
    cross join generate_series(0, 23) g (hr)
    left join hours h
      on h.practice_id = a.practice_id and h.actor_kind = a.actor_kind
      and h.actor_id = a.actor_id and h.hr = g.hr
    group by 1, 2, 3, 4
  ),
  seen as (
    select distinct e.practice_id, e.actor_kind, e.actor_id,
      (e.occurred_at at time zone 'UTC')::date as day,
      unnest(e.patient_ids) as patient_id
    from audit.events e
    where e.occurred_at >= (p_day - volume_span)::timestamp at time zone 'UTC'
      and e.occurred_at < p_day::timestamp at time zone 'UTC'
      and e.actor_kind in ('user', 'agent', 'api_token')
      and e.outcome = 'success'
  ),
  daily as (
    select s.practice_id, s.actor_kind, s.actor_id, s.day, count(*) as patients
    from seen s
    group by 1, 2, 3, 4
  ),
  davg as (
    select d.practice_id, d.actor_kind, d.actor_id, count(*)::int as active_days,
      avg(d.patients) as avg_patients
    from daily d join th on th.practice_id = d.practice_id
    where d.day >= th.volume_from
    group by 1, 2, 3
  )
  select h.practice_id, h.actor_kind, h.actor_id, h.role, p_day,
    coalesce(d.active_days, 0), coalesce(d.avg_patients, 0), h.hour_counts
  from hist h
  left join davg d
    on d.practice_id = h.practice_id and d.actor_kind = h.actor_kind
    and d.actor_id = h.actor_id;
  get diagnostics n = row_count;
  update monitor.baselines b
    set rare_hours = array(
      select monitor.is_rare_hour(
        b.hour_counts, h,
        monitor.threshold(b.practice_id, 'hours.rare_share'),
        monitor.threshold(b.practice_id, 'hours.min_history')
      )
      from generate_series(0, 23) h order by h
    );
  insert into monitor.baseline_runs (computed_for, computed_at)
    values (p_day, clock_timestamp());
  return n;
end
$$;

-- How long a window may be for the day detectors to read only the days of the
-- actors active in it (a tick's few minutes, or an hour after a restart); a
-- longer window reads every actor's days in one pass.
create function monitor.short_window() returns interval
language sql immutable
as $$
  select interval '6 hours'
$$;

-- The audit events from p_from to p_to: of the given actors only, found through
-- events_actor_time, or, without actors, of everyone in one pass. Both branches
-- are planned once; the one that does not apply is skipped when it runs. Plain
-- SQL so that it is inlined into the detectors, which fix the search path.
create function monitor.day_events(
  p_from timestamptz, p_to timestamptz, p_actors uuid[]
) returns setof audit.events
language sql stable
as $$
  select e.* from audit.events e
  where p_actors is null and e.occurred_at >= p_from and e.occurred_at <= p_to
  union all
  select e.* from audit.events e
  where p_actors is not null and e.actor_id = any(p_actors)
    and e.occurred_at >= p_from and e.occurred_at <= p_to
$$;

-- More distinct patients in a day than the actor's own usual day and their role's,
-- by a factor. The window's days are counted in one pass (a day that began before
-- the window counts whole, as it always did); evidence is read for the spikes only.
create or replace function monitor.detect_volume_spike(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
as $$
#variable_conflict use_column
declare
  day_start constant timestamptz
    := (p_from at time zone 'UTC')::date::timestamp at time zone 'UTC';
  actors uuid[];
begin
  if p_to - p_from <= monitor.short_window() then
    select array_agg(distinct e.actor_id) into actors
    from audit.events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.actor_kind in ('user', 'agent', 'api_token') and e.outcome = 'success'
      and cardinality(e.patient_ids) > 0;
    if actors is null then
      return;
    end if;
  end if;
  return query
    with seen as (
      select e.practice_id, e.actor_kind, e.actor_id,
        (e.occurred_at at time zone 'UTC')::date as day, e.patient_id,
        max(e.actor_role) as role, min(e.occurred_at) as first_at,
        max(e.occurred_at) as last_at
      from (
        select e.practice_id, e.actor_kind, e.actor_id, e.actor_role, e.occurred_at,
          unnest(e.patient_ids) as patient_id
        from monitor.day_events(day_start, p_to, actors) e
        where e.actor_kind in ('user', 'agent', 'api_token')
          and e.outcome = 'success'
      ) e
      group by 1, 2, 3, 4, 5
    ),
    today as (
      select s.practice_id, s.actor_kind, s.actor_id, s.day, max(s.role) as role,
        count(*) as patients, min(s.first_at) as first_at, max(s.last_at) as last_at
      from seen s
      group by 1, 2, 3, 4
      -- Only the actor-days with an access in the window, as before.
      having max(s.last_at) > p_from
    ),
    role_avg as (
      select b.practice_id, b.actor_role, avg(b.daily_patients) as usual
      from monitor.baselines b
      where b.active_days > 0 and b.actor_kind = 'user'
      group by 1, 2
    ),
    spikes as materialized (
      select t.*, b.daily_patients, r.usual
      from today t
      left join monitor.baselines b
        on b.practice_id = t.practice_id and b.actor_kind = t.actor_kind
        and b.actor_id = t.actor_id
      left join role_avg r
        on r.practice_id = t.practice_id
        and r.actor_role = coalesce(b.actor_role, t.role)
      where t.patients >= monitor.threshold(t.practice_id, 'volume.min_patients')
        and t.patients > monitor.threshold(t.practice_id, 'volume.factor')
          * greatest(coalesce(b.daily_patients, 0), coalesce(r.usual, 0))
    )
    select t.practice_id, 'volume_spike', 'high', t.actor_kind, t.actor_id,
      '{}'::uuid[],
      array(
        select distinct e.id from audit.events e
        where e.actor_id = t.actor_id
          and e.occurred_at >= t.day::timestamp at time zone 'UTC'
          and e.occurred_at < (t.day + 1)::timestamp at time zone 'UTC'
          and e.occurred_at <= p_to
          and e.practice_id = t.practice_id and e.actor_kind = t.actor_kind
          and e.outcome = 'success' and cardinality(e.patient_ids) > 0
        order by e.id limit 100
      ),
      format(
        '%s distinct patients today; usual day: %s (own), %s (role)',
        t.patients, round(coalesce(t.daily_patients, 0), 1),
        round(coalesce(t.usual, 0), 1)
      ),
      t.first_at, t.last_at,
      format('volume_spike:%s:%s', t.actor_id, t.day)
    from spikes t;
end
$$;

-- Patient accesses at hours rare for that member, several in one day. Only the
-- members with a rare hour are read; evidence is read for the findings only.
create or replace function monitor.detect_unusual_hours(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
as $$
#variable_conflict use_column
declare
  day_start constant timestamptz
    := (p_from at time zone 'UTC')::date::timestamp at time zone 'UTC';
  actors uuid[];
begin
  if p_to - p_from <= monitor.short_window() then
    select array_agg(distinct e.actor_id) into actors
    from audit.events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.actor_kind = 'user' and e.outcome = 'success'
      and cardinality(e.patient_ids) > 0;
    if actors is null then
      return;
    end if;
  end if;
  return query
    with watched as materialized (
      select b.practice_id, b.actor_id, b.rare_hours,
        monitor.threshold(b.practice_id, 'hours.min_events') as min_events
      from monitor.baselines b
      where b.actor_kind = 'user' and true = any(b.rare_hours)
    ),
    days as (
      select w.practice_id, w.actor_id, w.min_events,
        (e.occurred_at at time zone 'UTC')::date as day,
        count(*) filter (where w.rare_hours[extract(hour from e.occurred_at
          at time zone 'UTC')::int + 1]) as rare,
        min(e.occurred_at) filter (where w.rare_hours[extract(hour from
          e.occurred_at at time zone 'UTC')::int + 1]) as first_at,
        max(e.occurred_at) filter (where w.rare_hours[extract(hour from
          e.occurred_at at time zone 'UTC')::int + 1]) as last_at,
        max(e.occurred_at) as last_any
      from monitor.day_events(day_start, p_to, actors) e
      join watched w on w.practice_id = e.practice_id and w.actor_id = e.actor_id
      where e.actor_kind = 'user' and e.outcome = 'success'
        and cardinality(e.patient_ids) > 0
      group by 1, 2, 3, 4
    ),
    found as materialized (
      select d.* from days d
      -- Only the member-days with an access in the window, as before.
      where d.last_any > p_from and d.rare > 0 and d.rare >= d.min_events
    )
    select f.practice_id, 'unusual_hours', 'medium', 'user', f.actor_id,
      '{}'::uuid[],
      array(
        select e.id from audit.events e
        join watched w on w.practice_id = e.practice_id and w.actor_id = e.actor_id
        where e.actor_id = f.actor_id and e.practice_id = f.practice_id
          and e.occurred_at >= f.day::timestamp at time zone 'UTC'
          and e.occurred_at < (f.day + 1)::timestamp at time zone 'UTC'
          and e.occurred_at <= p_to
          and e.actor_kind = 'user' and e.outcome = 'success'
          and cardinality(e.patient_ids) > 0
          and w.rare_hours[extract(hour from e.occurred_at at time zone 'UTC')::int
            + 1]
        order by e.occurred_at limit 100
      ),
      format(
        '%s patient access(es) at hours this member rarely works (%s to %s UTC)',
        f.rare, to_char(f.first_at at time zone 'UTC', 'HH24:MI'),
        to_char(f.last_at at time zone 'UTC', 'HH24:MI')
      ),
      f.first_at, f.last_at,
      format('unusual_hours:%s:%s', f.actor_id, f.day)
    from found f;
end
$$;

-- Bulk exports and unusually large results, by one event or by a day's total. The
-- window's days are summed in one pass; evidence is read for the findings only.
create or replace function monitor.detect_bulk_access(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
as $$
#variable_conflict use_column
declare
  day_start constant timestamptz
    := (p_from at time zone 'UTC')::date::timestamp at time zone 'UTC';
  actors uuid[];
begin
  if p_to - p_from <= monitor.short_window() then
    select array_agg(distinct e.actor_id) into actors
    from audit.events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.actor_kind <> 'system' and e.outcome = 'success' and e.row_count > 0;
    if actors is null then
      return;
    end if;
  end if;
  return query
    with day_rows as (
      select e.practice_id, e.actor_kind, e.actor_id,
        (e.occurred_at at time zone 'UTC')::date as day,
        sum(e.row_count) as total,
        max(e.row_count) filter (where e.action = 'export') as biggest_export,
        max(e.row_count) as biggest,
        min(e.occurred_at) as first_at, max(e.occurred_at) as last_at
      from monitor.day_events(day_start, p_to, actors) e
      where e.actor_kind <> 'system' and e.outcome = 'success' and e.row_count > 0
      group by 1, 2, 3, 4
      -- Only the actor-days with rows read in the window, as before.
      having max(e.occurred_at) > p_from
    ),
    found as materialized (
      select d.* from day_rows d
      where coalesce(d.biggest_export, 0)
          >= monitor.threshold(d.practice_id, 'bulk.export_rows')
        or d.biggest >= monitor.threshold(d.practice_id, 'bulk.result_rows')
        or d.total >= monitor.threshold(d.practice_id, 'bulk.day_rows')
    )
    select d.practice_id, 'bulk_access', 'high', d.actor_kind, d.actor_id,
      '{}'::uuid[],
      array(
        select e.id from audit.events e
        where e.actor_id = d.actor_id
          and e.occurred_at >= d.day::timestamp at time zone 'UTC'
          and e.occurred_at < (d.day + 1)::timestamp at time zone 'UTC'
          and e.occurred_at <= p_to
          and e.practice_id = d.practice_id and e.actor_kind = d.actor_kind
          and e.outcome = 'success' and e.row_count > 0
        order by e.row_count desc limit 100
      ),
      format(
        '%s rows today; largest export %s rows, largest result %s rows',
        d.total, coalesce(d.biggest_export, 0), d.biggest
      ),
      d.first_at, d.last_at,
      format('bulk_access:%s:%s', d.actor_id, d.day)
    from found d;
end
$$;

-- Repeated refusals by one actor within a short window (windows are capped at an
-- hour of look-back). Each practice's window is looked up once, not once per
-- pair of refusals, and the refusals are paired by a join on the actor.
create or replace function monitor.detect_repeated_denied(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with d as materialized (
      select e.id, e.practice_id, e.actor_kind, e.actor_id, e.occurred_at
      from audit.events e
      where e.occurred_at > p_from - interval '1 hour' and e.occurred_at <= p_to
        and e.outcome = 'denied'
    ),
    th as materialized (
      select x.practice_id,
        make_interval(
          mins => least(60, monitor.threshold(x.practice_id, 'denied.window_minutes')
            ::int)
        ) as win,
        monitor.threshold(x.practice_id, 'denied.count') as enough
      from (select distinct d.practice_id from d) x
    ),
    hit as (
      -- Each refusal in the window with the refusals of the same actor in the
      -- look-back before it, itself included.
      select n.practice_id, n.actor_kind, n.actor_id, n.id, n.occurred_at,
        (n.occurred_at at time zone 'UTC')::date as day, th.enough,
        count(*) as recent
      from d n
      join th on th.practice_id = n.practice_id
      join d d2
        on d2.practice_id = n.practice_id and d2.actor_id = n.actor_id
        and d2.occurred_at <= n.occurred_at
        and d2.occurred_at > n.occurred_at - th.win
      where n.occurred_at > p_from
      group by n.practice_id, n.actor_kind, n.actor_id, n.id, n.occurred_at,
        th.enough
    )
    select h.practice_id, 'repeated_denied', 'medium', h.actor_kind, h.actor_id,
      '{}'::uuid[], array_agg(h.id order by h.occurred_at),
      format('%s denied accesses in a short window', max(h.recent)),
      min(h.occurred_at), max(h.occurred_at),
      format('repeated_denied:%s:%s', h.actor_id, h.day)
    from hit h
    where h.recent >= h.enough
    group by h.practice_id, h.actor_kind, h.actor_id, h.day;
end
$$;

-- A member opening a patient who shares their surname, address or phone, as in
-- 0062. The accesses of the window are read once for both kinds of match (a CTE
-- used twice is stored), so a filter on them alone runs on every access: the
-- explanation of a surname match is asked only after the tags have matched.
create or replace function monitor.detect_shared_identity(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with ev as (
      select e.id, e.practice_id, e.occurred_at, e.actor_id, p.patient_id
      from audit.events e cross join lateral unnest(e.patient_ids) as p (patient_id)
      where e.occurred_at > p_from and e.occurred_at <= p_to
        and e.actor_kind = 'user' and e.outcome = 'success'
        and e.action in ('view', 'export', 'playback', 'search')
    ),
    -- The surname matches first, behind a fence: the explanation is asked of
    -- these few, never of every access in the window.
    surname as materialized (
      select ev.*, m.kind
      from ev
      join monitor.member_tags m
        on m.practice_id = ev.practice_id and m.user_id = ev.actor_id
        and m.kind = 'surname'
      join monitor.patient_tags pt
        on pt.practice_id = ev.practice_id and pt.patient_id = ev.patient_id
        and pt.kind = 'surname' and pt.tag = m.tag
    ),
    matched as (
      select ev.*, m.kind
      from ev
      join monitor.member_tags m
        on m.practice_id = ev.practice_id and m.user_id = ev.actor_id
        and m.kind in ('address', 'phone')
      where exists (
          select 1 from monitor.patient_tags pt
          where pt.practice_id = ev.practice_id and pt.kind = m.kind
            and pt.tag = m.tag and pt.patient_id = ev.patient_id
        )
        or (
          m.kind = 'phone' and exists (
            select 1 from phi.patients p
            where p.practice_id = ev.practice_id and p.id = ev.patient_id
              and p.phone_bidx = m.tag
          )
        )
      union all
      select s.* from surname s
      where not monitor.explained(
        s.practice_id, s.actor_id, s.patient_id, s.occurred_at
      )
    )
    select practice_id, 'shared_identity', 'high', 'user', actor_id,
      array[patient_id], array_agg(distinct id),
      format(
        '%s access(es) to a patient sharing the member''s %s (blind-index match)',
        count(distinct id), string_agg(distinct kind, ', ')
      ),
      min(occurred_at), max(occurred_at),
      format('shared_identity:%s:%s:%s', actor_id, patient_id,
        (occurred_at at time zone 'UTC')::date)
    from matched
    group by practice_id, actor_id, patient_id,
      (occurred_at at time zone 'UTC')::date;
end
$$;

-- A member opening a co-worker's own record with nothing to explain it, as in
-- 0062; the explanation is asked only of the accesses whose tags matched.
create or replace function monitor.detect_coworker_record(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with u as (
      select e.id, e.practice_id, e.occurred_at, e.actor_id, p.patient_id
      from audit.events e cross join lateral unnest(e.patient_ids) as p (patient_id)
      where e.occurred_at > p_from and e.occurred_at <= p_to
        and e.actor_kind = 'user' and e.outcome = 'success'
        and e.action in ('view', 'playback')
        and e.purpose_of_use <> 'BTG'
    ),
    -- The tag matches first, behind a fence: the explanation is asked of these
    -- few, never of every access in the window.
    candidates as materialized (
      select u.*, m.user_id as coworker
      from u
      join monitor.patient_tags pt
        on pt.practice_id = u.practice_id and pt.patient_id = u.patient_id
        and pt.kind in ('name', 'phone')
      join monitor.member_tags m
        on m.practice_id = u.practice_id and m.kind = pt.kind and m.tag = pt.tag
        and m.user_id <> u.actor_id
      union
      select u.*, m.user_id
      from u
      join phi.patients p on p.practice_id = u.practice_id and p.id = u.patient_id
      join monitor.member_tags m
        on m.practice_id = u.practice_id and m.kind = 'phone' and m.tag = p.phone_bidx
        and m.user_id <> u.actor_id
    ),
    matched as (
      select c.* from candidates c
      where not monitor.explained(
        c.practice_id, c.actor_id, c.patient_id, c.occurred_at
      )
    )
    select practice_id, 'coworker_record', 'high', 'user', actor_id,
      array[patient_id], array_agg(distinct id),
      format(
        '%s unexplained access(es) to the record of a co-worker (member %s)',
        count(distinct id), min(coworker::text)
      ),
      min(occurred_at), max(occurred_at),
      format('coworker_record:%s:%s:%s', actor_id, patient_id,
        (occurred_at at time zone 'UTC')::date)
    from matched
    group by practice_id, actor_id, patient_id,
      (occurred_at at time zone 'UTC')::date;
end
$$;
