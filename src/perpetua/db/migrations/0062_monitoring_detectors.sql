-- The detectors. Each is a set-based query over the events of one window
-- (p_from, p_to], with whatever history it needs read through indexes, returning
-- monitor.finding rows; monitor.tick() runs them all with each one's high-water
-- mark. Findings carry ids, counts, times and the detector's name, never PHI.
--
-- Every dedup key is built from stable facts (actor, patient, day, network), so a
-- window scanned twice (the margin for late commits) raises nothing twice.

-- Whether something explains one member's access to one patient at one time: a
-- visit being prepared, held or followed up, a booking, call, coverage check or
-- registration around that time, or the provider's own patient. Asked per
-- candidate by the detectors that first narrow accesses to a few (tag matches);
-- monitor.unexplained_accesses writes the same conditions out as anti-joins. Every
-- name is schema-qualified and its callers fix the search path.
create function monitor.explained_by(
  p_practice uuid, p_actor uuid, p_patient uuid, p_at timestamptz,
  p_w interval, p_before interval, p_after interval, p_care interval
) returns boolean
language sql stable
as $$
  select exists (
      select 1 from phi.appointments a
      where a.practice_id = p_practice and a.patient_id = p_patient
        and (
          p_at between a.starts_at - p_before and a.ends_at + p_after
          or p_at between a.created_at - p_w and a.created_at + p_w
        )
    )
    or exists (
      select 1 from phi.calls c
      where c.practice_id = p_practice and c.patient_id = p_patient
        and c.started_at between p_at - p_w and p_at + p_w
    )
    or exists (
      select 1 from phi.coverages v
      where v.practice_id = p_practice and v.patient_id = p_patient
        and (
          v.last_verified_at between p_at - p_w and p_at + p_w
          or v.created_at between p_at - p_w and p_at + p_w
        )
    )
    or exists (
      select 1 from phi.patients p
      where p.practice_id = p_practice and p.id = p_patient
        and p.created_at between p_at - p_w and p_at + p_w
    )
    or exists (
      select 1 from app.memberships m
      join phi.appointments a
        on a.practice_id = m.practice_id and a.provider_id = m.provider_id
      where m.practice_id = p_practice and m.user_id = p_actor
        and m.provider_id is not null and a.patient_id = p_patient
        and a.starts_at between p_at - p_care and p_at + p_care
    )
$$;

-- Accesses to patients in the window that no relationship explains: no visit being
-- prepared, held or followed up, no call, no coverage check, no registration or
-- booking around that time, and not a provider's own patient. Explaining comes
-- first; only what is left is suspicious.
create function monitor.unexplained_accesses(p_from timestamptz, p_to timestamptz)
returns table (
  id uuid, practice_id uuid, occurred_at timestamptz, actor_id uuid,
  patient_id uuid
)
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
        and e.action in ('view', 'playback')
        and e.purpose_of_use <> 'BTG'
    ),
    th as materialized (
      select x.practice_id,
        make_interval(
          mins => monitor.threshold(x.practice_id, 'explain.window_minutes')::int
        ) as w,
        make_interval(
          days => monitor.threshold(x.practice_id, 'explain.visit_days_before')::int
        ) as before,
        make_interval(
          days => monitor.threshold(x.practice_id, 'explain.visit_days_after')::int
        ) as after,
        make_interval(
          days => monitor.threshold(x.practice_id, 'explain.care_days')::int
        ) as care
      from (select distinct ev.practice_id from ev) x
    )
    select ev.id, ev.practice_id, ev.occurred_at, ev.actor_id, ev.patient_id
    from ev join th on th.practice_id = ev.practice_id
    -- The conditions of monitor.explained_by, written out as anti-joins so that
    -- the planner can run them set-based over many events (a function with
    -- subqueries is not inlined); the two must say the same.
    where not exists (
        select 1 from phi.appointments a
        where a.practice_id = ev.practice_id and a.patient_id = ev.patient_id
          and (
            ev.occurred_at between a.starts_at - th.before and a.ends_at + th.after
            or ev.occurred_at between a.created_at - th.w and a.created_at + th.w
          )
      )
      and not exists (
        select 1 from phi.calls c
        where c.practice_id = ev.practice_id and c.patient_id = ev.patient_id
          and c.started_at between ev.occurred_at - th.w and ev.occurred_at + th.w
      )
      and not exists (
        select 1 from phi.coverages v
        where v.practice_id = ev.practice_id and v.patient_id = ev.patient_id
          and (
            v.last_verified_at between ev.occurred_at - th.w and ev.occurred_at + th.w
            or v.created_at between ev.occurred_at - th.w and ev.occurred_at + th.w
          )
      )
      and not exists (
        select 1 from phi.patients p
        where p.practice_id = ev.practice_id and p.id = ev.patient_id
          and p.created_at between ev.occurred_at - th.w and ev.occurred_at + th.w
      )
      and not exists (
        select 1 from app.memberships m
        join phi.appointments a
          on a.practice_id = m.practice_id and a.provider_id = m.provider_id
        where m.practice_id = ev.practice_id and m.user_id = ev.actor_id
          and m.provider_id is not null and a.patient_id = ev.patient_id
          and a.starts_at between ev.occurred_at - th.care and ev.occurred_at + th.care
      );
end
$$;

create function monitor.detect_unexplained_access(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
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
        to_char(u.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24'))
    from monitor.unexplained_accesses(p_from, p_to) u
    group by u.practice_id, u.actor_id,
      to_char(u.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24');
end
$$;

-- The same explanation for one access, for detectors that first narrow the
-- accesses to a few candidates (the tag matches) and then ask.
create function monitor.explained(
  p_practice uuid, p_actor uuid, p_patient uuid, p_at timestamptz
) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select monitor.explained_by(
    p_practice, p_actor, p_patient, p_at,
    make_interval(mins => monitor.threshold(p_practice, 'explain.window_minutes')::int),
    make_interval(days => monitor.threshold(p_practice, 'explain.visit_days_before')
      ::int),
    make_interval(days => monitor.threshold(p_practice, 'explain.visit_days_after')
      ::int),
    make_interval(days => monitor.threshold(p_practice, 'explain.care_days')::int)
  )
$$;

-- A member opening a patient who shares their surname, address or phone (family,
-- neighbours), compared as blind-index tags. Address and phone alert on any access;
-- a shared surname only on an access nothing else explains, since common surnames
-- meet by chance every day.
create function monitor.detect_shared_identity(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
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
      select ev.*, m.kind
      from ev
      join monitor.member_tags m
        on m.practice_id = ev.practice_id and m.user_id = ev.actor_id
        and m.kind = 'surname'
      join monitor.patient_tags pt
        on pt.practice_id = ev.practice_id and pt.patient_id = ev.patient_id
        and pt.kind = 'surname' and pt.tag = m.tag
      where not monitor.explained(
        ev.practice_id, ev.actor_id, ev.patient_id, ev.occurred_at
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
    group by practice_id, actor_id, patient_id, (occurred_at at time zone 'UTC')::date;
end
$$;

-- A member opening a co-worker's own record (the patient's name or phone tag is
-- another member's) with nothing to explain it.
create function monitor.detect_coworker_record(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
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
    candidates as (
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
      where not monitor.explained(c.practice_id, c.actor_id, c.patient_id, c.occurred_at)
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
    group by practice_id, actor_id, patient_id, (occurred_at at time zone 'UTC')::date;
end
$$;


-- Whether an hour is rare for an actor: the hour and its two neighbours hold less
-- than p_share of the actor's accesses, over a history long enough to judge.
create function monitor.is_rare_hour(
  p_counts integer[], p_hour integer, p_share numeric, p_min_history numeric
) returns boolean
language sql immutable parallel safe
set search_path = pg_catalog
as $$
  select total >= p_min_history
    and (
      p_counts[((p_hour + 23) % 24) + 1] + p_counts[p_hour + 1]
      + p_counts[((p_hour + 1) % 24) + 1]
    ) < p_share * total
  from (select sum(c) as total from unnest(p_counts) c) t
$$;

-- Recompute every actor's habits from the days before p_day; once per day.
create function monitor.refresh_baselines(p_day date) returns integer
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  n integer;
  span constant integer := 28;
begin
  if exists (select 1 from monitor.baseline_runs r where r.computed_for = p_day) then
    return 0;
  end if;
  delete from monitor.baselines;
  insert into monitor.baselines (
    practice_id, actor_kind, actor_id, actor_role, computed_for, active_days,
    daily_patients, hour_counts
  )
  with ev as materialized (
    select e.practice_id, e.actor_kind, e.actor_id, e.actor_role, e.occurred_at,
      e.patient_ids
    from audit.events e
    where e.occurred_at >= (p_day - span)::timestamp at time zone 'UTC'
      and e.occurred_at < p_day::timestamp at time zone 'UTC'
      and e.actor_kind in ('user', 'agent', 'api_token')
      and e.outcome = 'success'
  ),
  th as materialized (
    select x.practice_id,
      (p_day - least(span, monitor.threshold(x.practice_id, 'hours.baseline_days')
        ::int))::timestamp at time zone 'UTC' as hours_from,
      (p_day - least(span, monitor.threshold(x.practice_id, 'volume.baseline_days')
        ::int))::timestamp at time zone 'UTC' as volume_from
    from (select distinct ev.practice_id from ev) x
  ),
  hours as (
    select ev.practice_id, ev.actor_kind, ev.actor_id,
      extract(hour from ev.occurred_at at time zone 'UTC')::int as hr,
      count(*)::int as n
    from ev join th on th.practice_id = ev.practice_id
    where ev.occurred_at >= th.hours_from
    group by 1, 2, 3, 4
  ),
  actors as (
    select ev.practice_id, ev.actor_kind, ev.actor_id, max(ev.actor_role) as role
    from ev group by 1, 2, 3
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
  daily as (
    select ev.practice_id, ev.actor_kind, ev.actor_id,
      (ev.occurred_at at time zone 'UTC')::date as day,
      count(distinct p.patient_id) as patients
    from ev join th on th.practice_id = ev.practice_id
    cross join lateral unnest(ev.patient_ids) as p (patient_id)
    where ev.occurred_at >= th.volume_from
    group by 1, 2, 3, 4
  ),
  davg as (
    select d.practice_id, d.actor_kind, d.actor_id, count(*)::int as active_days,
      avg(d.patients) as avg_patients
    from daily d group by 1, 2, 3
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

-- More distinct patients in a day than the actor's own usual day and their role's,
-- by a factor.
create function monitor.detect_volume_spike(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with active as (
      select distinct e.practice_id, e.actor_kind, e.actor_id,
        (e.occurred_at at time zone 'UTC')::date as day
      from audit.events e
      where e.occurred_at > p_from and e.occurred_at <= p_to
        and e.actor_kind in ('user', 'agent', 'api_token') and e.outcome = 'success'
        and cardinality(e.patient_ids) > 0
    ),
    today as (
      select a.practice_id, a.actor_kind, a.actor_id, a.day,
        max(e.actor_role) as role,
        count(distinct p.patient_id) as patients,
        min(e.occurred_at) as first_at, max(e.occurred_at) as last_at,
        (array_agg(distinct e.id))[1:100] as ids
      from active a
      join audit.events e
        on e.practice_id = a.practice_id and e.actor_kind = a.actor_kind
        and e.actor_id = a.actor_id
        and e.occurred_at >= a.day::timestamp at time zone 'UTC'
        and e.occurred_at < (a.day + 1)::timestamp at time zone 'UTC'
        and e.occurred_at <= p_to
        and e.outcome = 'success'
      cross join lateral unnest(e.patient_ids) as p (patient_id)
      group by 1, 2, 3, 4
    ),
    role_avg as (
      select b.practice_id, b.actor_role, avg(b.daily_patients) as usual
      from monitor.baselines b
      where b.active_days > 0 and b.actor_kind = 'user'
      group by 1, 2
    )
    select t.practice_id, 'volume_spike', 'high', t.actor_kind, t.actor_id,
      '{}'::uuid[], t.ids,
      format(
        '%s distinct patients today; usual day: %s (own), %s (role)',
        t.patients, round(coalesce(b.daily_patients, 0), 1),
        round(coalesce(r.usual, 0), 1)
      ),
      t.first_at, t.last_at,
      format('volume_spike:%s:%s', t.actor_id, t.day)
    from today t
    left join monitor.baselines b
      on b.practice_id = t.practice_id and b.actor_kind = t.actor_kind
      and b.actor_id = t.actor_id
    left join role_avg r
      on r.practice_id = t.practice_id and r.actor_role = coalesce(b.actor_role, t.role)
    where t.patients >= monitor.threshold(t.practice_id, 'volume.min_patients')
      and t.patients > monitor.threshold(t.practice_id, 'volume.factor')
        * greatest(coalesce(b.daily_patients, 0), coalesce(r.usual, 0));
end
$$;

-- Patient accesses at hours rare for that member, several in one day.
create function monitor.detect_unusual_hours(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with active as (
      select distinct e.practice_id, e.actor_id,
        (e.occurred_at at time zone 'UTC')::date as day
      from audit.events e
      where e.occurred_at > p_from and e.occurred_at <= p_to
        and e.actor_kind = 'user' and e.outcome = 'success'
        and cardinality(e.patient_ids) > 0
    ),
    th as materialized (
      select x.practice_id,
        monitor.threshold(x.practice_id, 'hours.min_events') as min_events
      from (select distinct active.practice_id from active) x
    ),
    rare as (
      select a.practice_id, a.actor_id, a.day, e.id, e.occurred_at, th.min_events
      from active a
      join th on th.practice_id = a.practice_id
      join monitor.baselines b
        on b.practice_id = a.practice_id and b.actor_kind = 'user'
        and b.actor_id = a.actor_id
      join audit.events e
        on e.practice_id = a.practice_id and e.actor_kind = 'user'
        and e.actor_id = a.actor_id
        and e.occurred_at >= a.day::timestamp at time zone 'UTC'
        and e.occurred_at < (a.day + 1)::timestamp at time zone 'UTC'
        and e.occurred_at <= p_to
        and e.outcome = 'success' and cardinality(e.patient_ids) > 0
      where b.rare_hours[extract(hour from e.occurred_at at time zone 'UTC')::int + 1]
    )
    select practice_id, 'unusual_hours', 'medium', 'user', actor_id, '{}'::uuid[],
      (array_agg(id order by occurred_at))[1:100],
      format(
        '%s patient access(es) at hours this member rarely works (%s to %s UTC)',
        count(*), to_char(min(occurred_at) at time zone 'UTC', 'HH24:MI'),
        to_char(max(occurred_at) at time zone 'UTC', 'HH24:MI')
      ),
      min(occurred_at), max(occurred_at),
      format('unusual_hours:%s:%s', actor_id, day)
    from rare
    group by practice_id, actor_id, day, min_events
    having count(*) >= min_events;
end
$$;

-- Bulk exports and unusually large results, by one event or by a day's total.
create function monitor.detect_bulk_access(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with active as (
      select distinct e.practice_id, e.actor_kind, e.actor_id,
        (e.occurred_at at time zone 'UTC')::date as day
      from audit.events e
      where e.occurred_at > p_from and e.occurred_at <= p_to
        and e.actor_kind <> 'system' and e.outcome = 'success' and e.row_count > 0
    ),
    day_rows as (
      select a.practice_id, a.actor_kind, a.actor_id, a.day,
        sum(e.row_count) as total,
        max(e.row_count) filter (where e.action = 'export') as biggest_export,
        max(e.row_count) as biggest,
        min(e.occurred_at) as first_at, max(e.occurred_at) as last_at,
        (array_agg(e.id order by e.row_count desc))[1:100] as ids
      from active a
      join audit.events e
        on e.practice_id = a.practice_id and e.actor_kind = a.actor_kind
        and e.actor_id = a.actor_id
        and e.occurred_at >= a.day::timestamp at time zone 'UTC'
        and e.occurred_at < (a.day + 1)::timestamp at time zone 'UTC'
        and e.occurred_at <= p_to
        and e.outcome = 'success' and e.row_count > 0
      group by 1, 2, 3, 4
    )
    select d.practice_id, 'bulk_access', 'high', d.actor_kind, d.actor_id,
      '{}'::uuid[], d.ids,
      format(
        '%s rows today; largest export %s rows, largest result %s rows',
        d.total, coalesce(d.biggest_export, 0), d.biggest
      ),
      d.first_at, d.last_at,
      format('bulk_access:%s:%s', d.actor_id, d.day)
    from day_rows d
    where coalesce(d.biggest_export, 0)
        >= monitor.threshold(d.practice_id, 'bulk.export_rows')
      or d.biggest >= monitor.threshold(d.practice_id, 'bulk.result_rows')
      or d.total >= monitor.threshold(d.practice_id, 'bulk.day_rows');
end
$$;

-- Every break-glass grant and every read under it.
create function monitor.detect_break_glass(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    select e.practice_id, 'break_glass', 'high', e.actor_kind, e.actor_id,
      e.patient_ids, array_agg(e.id),
      format('%s break-glass event(s)', count(*)),
      min(e.occurred_at), max(e.occurred_at),
      format('break_glass:%s:%s:%s', e.actor_id, e.patient_ids::text,
        (e.occurred_at at time zone 'UTC')::date)
    from audit.events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and (e.action = 'break_glass' or e.purpose_of_use = 'BTG')
    group by e.practice_id, e.actor_kind, e.actor_id, e.patient_ids,
      (e.occurred_at at time zone 'UTC')::date;
end
$$;

-- Repeated refusals by one actor within a short window (windows are capped at an
-- hour of look-back).
create function monitor.detect_repeated_denied(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with d as (
      select e.id, e.practice_id, e.actor_kind, e.actor_id, e.occurred_at
      from audit.events e
      where e.occurred_at > p_from - interval '1 hour' and e.occurred_at <= p_to
        and e.outcome = 'denied'
    ),
    hit as (
      select n.practice_id, n.actor_kind, n.actor_id,
        (n.occurred_at at time zone 'UTC')::date as day, n.id, n.occurred_at,
        (
          select count(*) from d d2
          where d2.practice_id = n.practice_id and d2.actor_id = n.actor_id
            and d2.occurred_at <= n.occurred_at
            and d2.occurred_at > n.occurred_at - make_interval(
              mins => least(60, monitor.threshold(n.practice_id,
                'denied.window_minutes')::int)
            )
        ) as recent
      from d n where n.occurred_at > p_from
    )
    select h.practice_id, 'repeated_denied', 'medium', h.actor_kind, h.actor_id,
      '{}'::uuid[], array_agg(h.id order by h.occurred_at),
      format('%s denied accesses in a short window', max(h.recent)),
      min(h.occurred_at), max(h.occurred_at),
      format('repeated_denied:%s:%s', h.actor_id, h.day)
    from hit h
    where h.recent >= monitor.threshold(h.practice_id, 'denied.count')
    group by h.practice_id, h.actor_kind, h.actor_id, h.day;
end
$$;

-- A refused or not-found request for an id that belongs to another practice: an
-- attempt on another practice's data. One is enough.
create function monitor.detect_cross_practice(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with ev as (
      select e.id, e.practice_id, e.actor_kind, e.actor_id, e.occurred_at, r.rid
      from audit.events e cross join lateral unnest(e.resource_ids) as r (rid)
      where e.occurred_at > p_from and e.occurred_at <= p_to
        and e.outcome in ('denied', 'not_found')
    ),
    foreign_ids as (
      select ev.* from ev
      where exists (select 1 from phi.patients x
                    where x.id = ev.rid and x.practice_id <> ev.practice_id)
        or exists (select 1 from phi.appointments x
                   where x.id = ev.rid and x.practice_id <> ev.practice_id)
        or exists (select 1 from phi.coverages x
                   where x.id = ev.rid and x.practice_id <> ev.practice_id)
        or exists (select 1 from phi.calls x
                   where x.id = ev.rid and x.practice_id <> ev.practice_id)
        or exists (select 1 from phi.clinical_documents x
                   where x.id = ev.rid and x.practice_id <> ev.practice_id)
    )
    select f.practice_id, 'cross_practice', 'critical', f.actor_kind, f.actor_id,
      '{}'::uuid[], array_agg(distinct f.id),
      format(
        '%s request(s) for %s record id(s) that belong to another practice',
        count(distinct f.id), count(distinct f.rid)
      ),
      min(f.occurred_at), max(f.occurred_at),
      format('cross_practice:%s:%s', f.actor_id,
        (f.occurred_at at time zone 'UTC')::date)
    from foreign_ids f
    group by f.practice_id, f.actor_kind, f.actor_id,
      (f.occurred_at at time zone 'UTC')::date;
end
$$;

-- Bursts of failed sign-ins and second factors: per account, and per address across
-- accounts (credential stuffing). Each practice of a targeted member is told.
create function monitor.detect_failed_signins(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with f as (
      select s.id, s.occurred_at, s.user_id, s.ip
      from app.security_events s
      where s.occurred_at > p_from - interval '1 hour' and s.occurred_at <= p_to
        and s.kind in ('account:signin:failure', 'account:mfa:failure')
    ),
    per_user as (
      select m.practice_id, n.user_id, n.id, n.occurred_at,
        (
          select count(*) from f f2
          where f2.user_id = n.user_id and f2.occurred_at <= n.occurred_at
            and f2.occurred_at > n.occurred_at - make_interval(
              mins => least(60, monitor.threshold(m.practice_id,
                'signin.window_minutes')::int)
            )
        ) as recent
      from f n
      join app.memberships m on m.user_id = n.user_id
      where n.occurred_at > p_from
    ),
    per_ip as (
      select m.practice_id, n.ip, n.occurred_at, f2.user_id, f2.id
      from f n
      join f f2 on f2.ip = n.ip and f2.occurred_at <= n.occurred_at
        and f2.occurred_at > n.occurred_at - interval '1 hour'
      join app.memberships m on m.user_id = f2.user_id
      where n.occurred_at > p_from and n.ip is not null
        and f2.occurred_at > n.occurred_at - make_interval(
          mins => least(60, monitor.threshold(m.practice_id,
            'signin.window_minutes')::int)
        )
    ),
    ip_bursts as (
      select p.practice_id, p.ip, (max(p.occurred_at) at time zone 'UTC')::date as day,
        count(distinct p.id) as failures, count(distinct p.user_id) as accounts,
        min(p.occurred_at) as first_at, max(p.occurred_at) as last_at
      from per_ip p
      group by p.practice_id, p.ip, p.occurred_at
    )
    select u.practice_id, 'failed_signins', 'high', 'user', u.user_id,
      '{}'::uuid[], '{}'::uuid[],
      format(
        '%s failed sign-ins or second factors for one account in a short window '
        '(security events up to #%s)', max(u.recent), max(u.id)
      ),
      min(u.occurred_at), max(u.occurred_at),
      format('failed_signins:user:%s:%s', u.user_id,
        (u.occurred_at at time zone 'UTC')::date)
    from per_user u
    where u.recent >= monitor.threshold(u.practice_id, 'signin.user_failures')
    group by u.practice_id, u.user_id, (u.occurred_at at time zone 'UTC')::date
    union all
    select b.practice_id, 'failed_signins', 'high', null, null,
      '{}'::uuid[], '{}'::uuid[],
      format(
        '%s failed sign-ins against %s of this practice''s accounts from one '
        'network address in a short window', max(b.failures), max(b.accounts)
      ),
      min(b.first_at), max(b.last_at),
      format('failed_signins:ip:%s:%s', host(b.ip), b.day)
    from ip_bursts b
    where b.failures >= monitor.threshold(b.practice_id, 'signin.ip_failures')
    group by b.practice_id, b.ip, b.day;
end
$$;

-- Two successful sign-ins of one account from networks far apart (different /16)
-- within a short time. Without a geolocation database this stands in for
-- "impossible travel": it cannot tell distance, only that the networks differ.
create function monitor.detect_network_hop(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
as $$
#variable_conflict use_column
begin
  return query
    with s as (
      select e.id, e.occurred_at, e.user_id, e.ip
      from app.security_events e
      where e.occurred_at > p_from - interval '1 day' and e.occurred_at <= p_to
        and e.kind = 'account:signin:success' and e.ip is not null
        and e.user_id is not null
    ),
    hop as (
      select m.practice_id, n.user_id, n.occurred_at, n.id, prev.id as prev_id,
        prev.occurred_at as prev_at
      from s n
      join app.memberships m on m.user_id = n.user_id
      join s prev on prev.user_id = n.user_id and prev.occurred_at < n.occurred_at
        and prev.occurred_at >= n.occurred_at - make_interval(
          mins => monitor.threshold(m.practice_id, 'signin.hop_minutes')::int
        )
        and monitor.region_of(prev.ip) <> monitor.region_of(n.ip)
      where n.occurred_at > p_from
    )
    select h.practice_id, 'network_hop', 'high', 'user', h.user_id,
      '{}'::uuid[], '{}'::uuid[],
      format(
        'sign-ins from two distant networks %s minutes apart (security events #%s, #%s)',
        round(extract(epoch from min(h.occurred_at - h.prev_at)) / 60),
        min(h.prev_id), max(h.id)
      ),
      min(h.prev_at), max(h.occurred_at),
      format('network_hop:%s:%s', h.user_id, (h.occurred_at at time zone 'UTC')::date)
    from hop h
    group by h.practice_id, h.user_id, (h.occurred_at at time zone 'UTC')::date;
end
$$;

-- A sign-in from a network (or a device) the account has not used before, once the
-- account has a history. Networks and devices are learned as they appear.
create function monitor.detect_new_signin_network(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  s record;
  v_net cidr;
  v_device text;
  known_before integer;
  net_known boolean;
  device_known boolean;
  m record;
begin
  for s in
    select e.id, e.occurred_at, e.user_id, e.ip, e.user_agent
    from app.security_events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.kind = 'account:signin:success' and e.ip is not null
      and e.user_id is not null
    order by e.occurred_at, e.id
  loop
    v_net := monitor.network_of(s.ip);
    -- Versions change with every browser update; the family and system do not.
    v_device := left(regexp_replace(coalesce(s.user_agent, ''), '[0-9._]+', '', 'g'),
      200);
    select count(*), bool_or(k.network = v_net), bool_or(k.device = v_device)
      into known_before, net_known, device_known
    from monitor.known_networks k
    where k.subject_kind = 'user' and k.subject_id = s.user_id
      and k.first_seen_at < s.occurred_at;
    insert into monitor.known_networks as k (
      subject_kind, subject_id, network, device, first_seen_at, last_seen_at
    ) values ('user', s.user_id, v_net, v_device, s.occurred_at, s.occurred_at)
    on conflict (subject_kind, subject_id, network) do update
      set last_seen_at = greatest(k.last_seen_at, excluded.last_seen_at);
    if known_before = 0 or (net_known and device_known) then
      continue;
    end if;
    for m in
      select x.practice_id from app.memberships x where x.user_id = s.user_id
    loop
      if known_before < monitor.threshold(m.practice_id, 'signin.min_history')
         and net_known then
        continue;
      end if;
      return next row(
        m.practice_id, 'new_signin_network',
        case when net_known then 'low' else 'medium' end,
        'user', s.user_id, '{}'::uuid[], '{}'::uuid[],
        format('sign-in from a %s (security event #%s)',
          case when net_known then 'new device on a known network'
            else 'network this account has not used before' end, s.id),
        s.occurred_at, s.occurred_at,
        format('new_signin_network:%s:%s:%s', s.user_id, v_net,
          case when net_known then md5(v_device) else 'net' end)
      )::monitor.finding;
    end loop;
  end loop;
end
$$;

-- An API token used from a network it has not been used from before (once it has a
-- history), and any use of a revoked token.
create function monitor.detect_token_misuse(p_from timestamptz, p_to timestamptz)
returns setof monitor.finding
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  u record;
  history integer;
begin
  for u in
    select e.practice_id, e.actor_id, monitor.network_of(e.client_ip) as net,
      min(e.occurred_at) as first_at, max(e.occurred_at) as last_at,
      (array_agg(e.id order by e.occurred_at))[1:100] as ids, count(*) as uses
    from audit.events e
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.actor_kind = 'api_token' and e.client_ip is not null
    group by 1, 2, 3
    order by 4
  loop
    select count(*) into history from monitor.known_networks k
    where k.subject_kind = 'api_token' and k.subject_id = u.actor_id
      and k.network <> u.net and k.first_seen_at < u.first_at;
    if exists (
      select 1 from monitor.known_networks k
      where k.subject_kind = 'api_token' and k.subject_id = u.actor_id
        and k.network = u.net
    ) then
      update monitor.known_networks k
        set last_seen_at = greatest(k.last_seen_at, u.last_at)
        where k.subject_kind = 'api_token' and k.subject_id = u.actor_id
          and k.network = u.net;
      continue;
    end if;
    insert into monitor.known_networks (
      subject_kind, subject_id, network, first_seen_at, last_seen_at
    ) values ('api_token', u.actor_id, u.net, u.first_at, u.last_at);
    if history > 0 then
      return next row(
        u.practice_id, 'token_new_network', 'high', 'api_token', u.actor_id,
        '{}'::uuid[], u.ids,
        format('API token used %s time(s) from a network it never used before',
          u.uses),
        u.first_at, u.last_at,
        format('token_new_network:%s:%s', u.actor_id, u.net)
      )::monitor.finding;
    end if;
  end loop;

  -- Presented after revocation (recorded at resolution), or acting after it.
  return query
    select s.practice_id, 'revoked_token', 'critical', 'api_token',
      (s.detail ->> 'token_id')::uuid, '{}'::uuid[], '{}'::uuid[],
      format('%s attempt(s) to use a revoked API token (security events #%s-#%s)',
        count(*), min(s.id), max(s.id)),
      min(s.occurred_at), max(s.occurred_at),
      format('revoked_token:%s:%s', s.detail ->> 'token_id',
        (s.occurred_at at time zone 'UTC')::date)
    from app.security_events s
    where s.occurred_at > p_from and s.occurred_at <= p_to
      and s.kind = 'practice:api_token:revoked_used' and s.practice_id is not null
    group by s.practice_id, s.detail ->> 'token_id',
      (s.occurred_at at time zone 'UTC')::date
    union all
    select e.practice_id, 'revoked_token', 'critical', 'api_token', e.actor_id,
      '{}'::uuid[], array_agg(e.id),
      format('%s access(es) by an API token after its revocation', count(*)),
      min(e.occurred_at), max(e.occurred_at),
      format('revoked_token:%s:%s', e.actor_id,
        (e.occurred_at at time zone 'UTC')::date)
    from audit.events e
    join app.api_tokens t on t.id = e.actor_id and t.practice_id = e.practice_id
    where e.occurred_at > p_from and e.occurred_at <= p_to
      and e.actor_kind = 'api_token' and t.revoked_at is not null
      and e.occurred_at > t.revoked_at
    group by e.practice_id, e.actor_id, (e.occurred_at at time zone 'UTC')::date;
end
$$;

create function monitor.detectors() returns text[]
language sql immutable
set search_path = pg_catalog
as $$
  select array[
    'unexplained_access', 'shared_identity', 'coworker_record', 'volume_spike',
    'unusual_hours', 'bulk_access', 'break_glass', 'repeated_denied',
    'cross_practice', 'failed_signins', 'network_hop', 'new_signin_network',
    'token_misuse'
  ]
$$;

-- The kind of new event without which a detector cannot find anything.
create function monitor.detector_needs(p_detector text) returns text
language sql immutable
set search_path = pg_catalog
as $$
  select case p_detector
    when 'volume_spike' then 'any_access'
    when 'bulk_access' then 'rows'
    when 'break_glass' then 'glass'
    when 'repeated_denied' then 'denied'
    when 'cross_practice' then 'refused'
    when 'failed_signins' then 'failures'
    when 'network_hop' then 'signins'
    when 'new_signin_network' then 'signins'
    when 'token_misuse' then 'token'
    else 'user_access'
  end
$$;

-- One run of every detector over what is new since its high-water mark (less a
-- margin for late commits), up to p_now. Baselines are refreshed first, once a day.
create function monitor.tick(p_now timestamptz) returns setof monitor.finding
language plpgsql volatile security definer
set search_path = pg_catalog
set plan_cache_mode = force_generic_plan
as $$
declare
  d text;
  since timestamptz;
  earliest timestamptz;
  n integer;
  seen jsonb;
  margin constant interval := interval '2 minutes';
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'detectors run as the system' using errcode = 'PR403';
  end if;
  perform monitor.claim_no_practice();
  -- One run at a time (a worker and a web process may both be scheduled): the
  -- other returns nothing and the next tick picks up where this one stopped.
  if not pg_try_advisory_xact_lock(hashtext('perpetua.monitor.tick')) then
    return;
  end if;
  perform monitor.refresh_baselines((p_now at time zone 'UTC')::date);

  -- What kinds of events arrived since the oldest mark: a detector with nothing
  -- of its kind to look at is skipped (its mark still moves on).
  select coalesce(min(s.scanned_to), p_now - interval '1 hour') - margin
    into earliest from monitor.detector_state s;
  select jsonb_build_object(
    'user_access', coalesce(bool_or(e.actor_kind = 'user' and e.outcome = 'success'
      and cardinality(e.patient_ids) > 0), false),
    'any_access', coalesce(bool_or(e.actor_kind <> 'system'
      and e.outcome = 'success' and cardinality(e.patient_ids) > 0), false),
    'rows', coalesce(bool_or(e.actor_kind <> 'system' and e.outcome = 'success'
      and e.row_count > 0), false),
    'glass', coalesce(bool_or(e.action = 'break_glass'
      or e.purpose_of_use = 'BTG'), false),
    'denied', coalesce(bool_or(e.outcome = 'denied'), false),
    'refused', coalesce(bool_or(e.outcome in ('denied', 'not_found')), false),
    'token', coalesce(bool_or(e.actor_kind = 'api_token'), false)
  ) into seen
  from audit.events e
  where e.occurred_at > earliest and e.occurred_at <= p_now;
  select seen || jsonb_build_object(
    'failures', coalesce(bool_or(s.kind in ('account:signin:failure',
      'account:mfa:failure')), false),
    'signins', coalesce(bool_or(s.kind = 'account:signin:success'), false),
    'revoked', coalesce(bool_or(s.kind = 'practice:api_token:revoked_used'), false)
  ) into seen
  from app.security_events s
  where s.occurred_at > earliest and s.occurred_at <= p_now;
  seen := seen || jsonb_build_object(
    'token', (seen ->> 'token')::boolean or (seen ->> 'revoked')::boolean
  );

  foreach d in array monitor.detectors() loop
    select s.scanned_to - margin into since
    from monitor.detector_state s where s.detector = d;
    -- A detector's first run looks back one hour, not over all history.
    since := coalesce(since, p_now - interval '1 hour');
    if since >= p_now then
      continue;
    end if;
    n := 0;
    if (seen ->> monitor.detector_needs(d))::boolean then
      return query execute format('select * from monitor.%I($1, $2)', 'detect_' || d)
        using since, p_now;
      get diagnostics n = row_count;
    end if;
    insert into monitor.detector_state as s (
      detector, scanned_to, last_run_at, last_findings
    ) values (d, p_now, clock_timestamp(), n)
    on conflict (detector) do update
      set scanned_to = greatest(s.scanned_to, excluded.scanned_to),
          last_run_at = excluded.last_run_at,
          last_findings = excluded.last_findings;
  end loop;
end
$$;

-- Every detector over an explicit window, without touching the high-water marks:
-- for a backfill after downtime and for measuring the detectors' throughput.
create function monitor.scan(
  p_from timestamptz, p_to timestamptz, p_only text default null
)
returns setof monitor.finding
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  d text;
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'detectors run as the system' using errcode = 'PR403';
  end if;
  perform monitor.claim_no_practice();
  perform monitor.refresh_baselines((p_to at time zone 'UTC')::date);
  foreach d in array monitor.detectors() loop
    continue when p_only is not null and d <> p_only;
    return query execute format('select * from monitor.%I($1, $2)', 'detect_' || d)
      using p_from, p_to;
  end loop;
end
$$;

revoke all on all functions in schema monitor from public;
grant execute on function monitor.tick(timestamptz) to perpetua_service;
grant execute on function monitor.scan(timestamptz, timestamptz, text)
  to perpetua_service;
grant execute on function monitor.alert_recipients(uuid) to perpetua_service;
grant execute on function monitor.staff_queue() to perpetua_service;
-- Policies call it with the caller's privileges; for the service role it is false.
grant execute on function monitor.is_monitor() to perpetua_service;
grant execute on function monitor.detectors() to perpetua_service;
