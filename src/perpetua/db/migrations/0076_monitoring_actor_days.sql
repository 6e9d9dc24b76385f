-- A daily roll-up of what each actor did (monitor.actor_days), so that a long
-- window reads finished days as one row per actor-day instead of every event.
-- What every detector finds, and the dedup keys it builds, are as in 0071; only
-- how finished days are reached changes.
--
-- - The roll-up of a UTC day holds, per practice and actor, the counts the day
--   detectors and the baselines judge: events, successes by hour, distinct
--   patients, rows read and the largest reads (with the ids of the 100 largest,
--   the evidence of bulk_access). It is built one day at a time, so that the
--   hash of distinct patients holds one day and stays in memory.
-- - Each built day records how many audit events it was built from, counted in
--   the same statement (one snapshot). Audit events are append-only, so a day
--   whose count is unchanged holds the same events; a late insert changes the
--   count and the day is built again before it is read (monitor.refresh_actor_days,
--   called by the baselines job, by monitor.scan and by a tick over a long window).
-- - volume_spike and bulk_access read the roll-up for the window's days before
--   the day of its end, and the events only for that last day; a tick's short
--   window still reads its few actors' events through events_actor_time.
-- - The baselines read the roll-up instead of the events.
-- - unexplained_access groups its accesses one day at a time, so that the sort
--   of a month of accesses by member and hour becomes small in-memory sorts.

create table monitor.actor_days (
  day date not null,
  practice_id uuid not null,
  actor_kind text not null,
  actor_id uuid not null,
  -- Every event of the actor that day, whatever its outcome: summed over the day,
  -- the count that tells whether the day is still current.
  events integer not null,
  -- Successful events, all of them and per UTC hour (index = hour + 1), and the
  -- largest actor_role among them (the baselines' role).
  successes integer not null,
  hour_events integer[] not null check (cardinality(hour_events) = 24),
  role text,
  -- Successful events that name patients: distinct patients, their role, and the
  -- first and last of them (volume_spike).
  patients integer not null,
  patient_role text,
  patients_first timestamptz,
  patients_last timestamptz,
  -- Successful events with rows (bulk_access): total, largest result, largest
  -- export, first and last, and the 100 largest by rows (then time, then id).
  rows_total bigint not null,
  rows_biggest integer,
  rows_biggest_export integer,
  rows_first timestamptz,
  rows_last timestamptz,
  rows_evidence uuid[] not null,
  primary key (day, practice_id, actor_kind, actor_id)
);

-- The days the roll-up covers, and how many audit events each was built from.
create table monitor.actor_day_builds (
  day date primary key,
  events bigint not null,
  built_at timestamptz not null,
  -- The transaction that last compared the day with its events: later readers in
  -- the same transaction (a scan runs one detector after another) need not.
  checked_in xid8
);

alter table monitor.actor_days enable row level security;
alter table monitor.actor_days force row level security;
alter table monitor.actor_day_builds enable row level security;
alter table monitor.actor_day_builds force row level security;
create policy actor_days_monitor on monitor.actor_days for all
  using ((select monitor.is_monitor())) with check ((select monitor.is_monitor()));
create policy actor_day_builds_monitor on monitor.actor_day_builds for all
  using ((select monitor.is_monitor())) with check ((select monitor.is_monitor()));

-- Build the roll-up of one UTC day from its audit events, replacing what was
-- there. One statement, so the events counted are the events aggregated; it
-- reads the day three times (counts, distinct patients, largest reads), each a
-- hash or a sort of one day's events. Planned for each day's own bounds.
create function monitor.build_actor_day(p_day date) returns bigint
language plpgsql volatile
set search_path = pg_catalog
set work_mem = '256MB'
set plan_cache_mode = force_custom_plan
as $$
declare
  lo constant timestamptz := p_day::timestamp at time zone 'UTC';
  hi constant timestamptz := (p_day + 1)::timestamp at time zone 'UTC';
  n bigint;
begin
  delete from monitor.actor_days r where r.day = p_day;
  with agg as (
    select e.practice_id, e.actor_kind, e.actor_id,
      count(*)::int as events,
      count(*) filter (where e.ok)::int as successes,
      -- One hashed pass over the day; the hours are counted as they go by.
      array[
        count(*) filter (where e.ok and e.hr = 0),
        count(*) filter (where e.ok and e.hr = 1),
        count(*) filter (where e.ok and e.hr = 2),
        count(*) filter (where e.ok and e.hr = 3),
        count(*) filter (where e.ok and e.hr = 4),
        count(*) filter (where e.ok and e.hr = 5),
        count(*) filter (where e.ok and e.hr = 6),
        count(*) filter (where e.ok and e.hr = 7),
        count(*) filter (where e.ok and e.hr = 8),
        count(*) filter (where e.ok and e.hr = 9),
        count(*) filter (where e.ok and e.hr = 10),
        count(*) filter (where e.ok and e.hr = 11),
        count(*) filter (where e.ok and e.hr = 12),
        count(*) filter (where e.ok and e.hr = 13),
        count(*) filter (where e.ok and e.hr = 14),
        count(*) filter (where e.ok and e.hr = 15),
        count(*) filter (where e.ok and e.hr = 16),
        count(*) filter (where e.ok and e.hr = 17),
        count(*) filter (where e.ok and e.hr = 18),
        count(*) filter (where e.ok and e.hr = 19),
        count(*) filter (where e.ok and e.hr = 20),
        count(*) filter (where e.ok and e.hr = 21),
        count(*) filter (where e.ok and e.hr = 22),
        count(*) filter (where e.ok and e.hr = 23)
      ]::int[] as hour_events,
      max(e.actor_role) filter (where e.ok) as role,
      max(e.actor_role) filter (where e.ok and e.named) as patient_role,
      min(e.occurred_at) filter (where e.ok and e.named) as patients_first,
      max(e.occurred_at) filter (where e.ok and e.named) as patients_last,
      coalesce(sum(e.row_count) filter (where e.ok and e.row_count > 0), 0)
        as rows_total,
      max(e.row_count) filter (where e.ok and e.row_count > 0) as rows_biggest,
      max(e.row_count) filter (
        where e.ok and e.row_count > 0 and e.action = 'export'
      ) as rows_biggest_export,
      min(e.occurred_at) filter (where e.ok and e.row_count > 0) as rows_first,
      max(e.occurred_at) filter (where e.ok and e.row_count > 0) as rows_last
    from (
      select e.practice_id, e.actor_kind, e.actor_id, e.actor_role, e.occurred_at,
        e.action, e.row_count, e.outcome = 'success' as ok,
        cardinality(e.patient_ids) > 0 as named,
        date_part('hour', e.occurred_at at time zone 'UTC')::int as hr
      from audit.events e
      where e.occurred_at >= lo and e.occurred_at < hi
      -- Computed once per event here, not once per aggregate that reads them.
      offset 0
    ) e
    group by 1, 2, 3
  ),
  -- Distinct patients: one hash entry per actor and patient of this day only.
  pat as (
    select p.practice_id, p.actor_kind, p.actor_id, count(*)::int as patients
    from (
      select distinct e.practice_id, e.actor_kind, e.actor_id,
        unnest(e.patient_ids) as patient_id
      from audit.events e
      where e.occurred_at >= lo and e.occurred_at < hi and e.outcome = 'success'
    ) p
    group by 1, 2, 3
  ),
  -- The 100 largest reads of each actor-day, in a fixed order so that the
  -- evidence does not depend on how the rows were reached.
  largest as (
    select r.practice_id, r.actor_kind, r.actor_id,
      array_agg(r.id order by r.row_count desc, r.occurred_at, r.id) as ids
    from (
      select e.practice_id, e.actor_kind, e.actor_id, e.id, e.row_count,
        e.occurred_at,
        row_number() over (
          partition by e.actor_id, e.practice_id, e.actor_kind
          order by e.row_count desc, e.occurred_at, e.id
        ) as rank
      from audit.events e
      where e.occurred_at >= lo and e.occurred_at < hi and e.outcome = 'success'
        and e.row_count > 0
    ) r
    where r.rank <= 100
    group by 1, 2, 3
  ),
  rolled as (
    insert into monitor.actor_days (
      day, practice_id, actor_kind, actor_id, events, successes, hour_events, role,
      patients, patient_role, patients_first, patients_last, rows_total,
      rows_biggest, rows_biggest_export, rows_first, rows_last, rows_evidence
    )
    select p_day, a.practice_id, a.actor_kind, a.actor_id, a.events, a.successes,
      a.hour_events, a.role, coalesce(p.patients, 0), a.patient_role,
      a.patients_first, a.patients_last, a.rows_total, a.rows_biggest,
      a.rows_biggest_export, a.rows_first, a.rows_last, coalesce(l.ids, '{}')
    from agg a
    left join pat p
      on p.practice_id = a.practice_id and p.actor_kind = a.actor_kind
      and p.actor_id = a.actor_id
    left join largest l
      on l.practice_id = a.practice_id and l.actor_kind = a.actor_kind
      and l.actor_id = a.actor_id
    returning events
  )
  insert into monitor.actor_day_builds as b (day, events, built_at)
  select p_day, coalesce((select sum(r.events) from rolled r), 0), clock_timestamp()
  on conflict (day) do update
    set events = excluded.events, built_at = excluded.built_at
  returning b.events into n;
  return n;
end
$$;

-- The UTC days from p_from up to (not including) p_to whose roll-up is missing
-- or was built from a different number of audit events than the day holds now
-- (a late insert): one counting pass over the window.
create function monitor.actor_days_to_build(p_from date, p_to date) returns date[]
language sql stable
set search_path = pg_catalog
as $$
  with counted as (
    select (e.occurred_at at time zone 'UTC')::date as day, count(*) as n
    from audit.events e
    where e.occurred_at >= p_from::timestamp at time zone 'UTC'
      and e.occurred_at < p_to::timestamp at time zone 'UTC'
    group by 1
  )
  select coalesce(array_agg(g.day order by g.day), '{}')
  from (
    select g.d::date as day
    from generate_series(p_from::timestamp, (p_to - 1)::timestamp, interval '1 day')
      g (d)
  ) g
  left join counted c on c.day = g.day
  left join monitor.actor_day_builds b on b.day = g.day
  where b.day is null or b.events <> coalesce(c.n, 0)
$$;

-- Make the roll-up of the UTC days from p_from up to (not including) p_to
-- current: build the days never built and the days whose audit events changed in
-- number since they were built (a late insert). Returns the days built.
create function monitor.refresh_actor_days(p_from date, p_to date) returns integer
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  stale date[];
  one_day date;
begin
  if p_from >= p_to then
    return 0;
  end if;
  -- A scan and a tick may both refresh: one at a time, and the second sees what
  -- the first built. Builders of single days (monitor.build_actor_day_as_system)
  -- hold this lock shared, so a refresh also waits for them.
  perform pg_advisory_xact_lock(hashtext('perpetua.monitor.actor_days'));
  if not exists (
    select 1
    from generate_series(p_from::timestamp, (p_to - 1)::timestamp, interval '1 day')
      g (d)
    left join monitor.actor_day_builds b on b.day = g.d::date
    where b.checked_in is distinct from pg_current_xact_id()
  ) then
    return 0;
  end if;
  stale := monitor.actor_days_to_build(p_from, p_to);
  foreach one_day in array stale loop
    perform monitor.build_actor_day(one_day);
  end loop;
  update monitor.actor_day_builds b set checked_in = pg_current_xact_id()
  where b.day >= p_from and b.day < p_to;
  return cardinality(stale);
end
$$;

-- For a backfill over many days (`perpetua monitor scan`), which builds the
-- stale days on several connections at once before it scans: building is most
-- of a long scan's work, and one day's build uses one core. As the system only.
create function monitor.stale_actor_days(p_from date, p_to date) returns date[]
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'detectors run as the system' using errcode = 'PR403';
  end if;
  perform monitor.claim_no_practice();
  if p_from >= p_to then
    return '{}';
  end if;
  return monitor.actor_days_to_build(p_from, p_to);
end
$$;

create function monitor.build_actor_day_as_system(p_day date) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if not coalesce(perpetua.actor_kind() = 'system', false) then
    raise exception 'detectors run as the system' using errcode = 'PR403';
  end if;
  perform monitor.claim_no_practice();
  -- Days build side by side, each day by one builder at a time; a refresh
  -- (which holds the same lock exclusively) waits until they are done.
  perform pg_advisory_xact_lock_shared(hashtext('perpetua.monitor.actor_days'));
  perform pg_advisory_xact_lock(
    hashtext('perpetua.monitor.actor_day'), p_day - date '2000-01-01'
  );
  return monitor.build_actor_day(p_day);
end
$$;

-- The first day from p_from on that the roll-up does not cover, at most p_to:
-- the detectors read the roll-up before it and the events from it on.
create function monitor.first_unrolled_day(p_from date, p_to date) returns date
language sql stable
as $$
  select coalesce(min(g.d)::date, p_to)
  from generate_series(p_from::timestamp, (p_to - 1)::timestamp, interval '1 day')
    g (d)
  where not exists (
    select 1 from monitor.actor_day_builds b where b.day = g.d::date
  )
$$;

-- Every actor's habits from the 28 days before p_day, once per day, as in 0071
-- but read from the roll-up (made current first) instead of the events: hours
-- from the successes per hour, the usual day from the distinct patients a day.
create or replace function monitor.refresh_baselines(p_day date) returns integer
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
  perform monitor.refresh_actor_days(p_day - span, p_day);
  -- Older days are read only by a backfill scan, which builds them again.
  delete from monitor.actor_days r where r.day < p_day - 2 * span;
  delete from monitor.actor_day_builds b where b.day < p_day - 2 * span;
  delete from monitor.baselines;
  insert into monitor.baselines (
    practice_id, actor_kind, actor_id, actor_role, computed_for, active_days,
    daily_patients, hour_counts
  )
  with by_day as materialized (
    select r.practice_id, r.actor_kind, r.actor_id, r.day, r.role, r.hour_events,
      r.patients
    from monitor.actor_days r
    where r.day >= p_day - span and r.day < p_day
      and r.actor_kind in ('user', 'agent', 'api_token')
      and r.successes > 0
  ),
  th as materialized (
    select x.practice_id,
      p_day - least(span, monitor.threshold(x.practice_id, 'hours.baseline_days')
        ::int) as hours_from,
      p_day - least(span, monitor.threshold(x.practice_id, 'volume.baseline_days')
        ::int) as volume_from
    from (select distinct b.practice_id from by_day b) x
  ),
  hours as (
    select b.practice_id, b.actor_kind, b.actor_id, u.hr::int - 1 as hr,
      sum(u.n)::int as n
    from by_day b
    join th on th.practice_id = b.practice_id
    cross join lateral unnest(b.hour_events) with ordinality u (n, hr)
    where b.day >= th.hours_from
    group by 1, 2, 3, 4
  ),
  actors as (
    select b.practice_id, b.actor_kind, b.actor_id, max(b.role) as role
    from by_day b group by 1, 2, 3
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
  -- An actor-day counts towards the usual day when it opened a patient.
  davg as (
    select b.practice_id, b.actor_kind, b.actor_id, count(*)::int as active_days,
      avg(b.patients) as avg_patients
    from by_day b join th on th.practice_id = b.practice_id
    where b.day >= th.volume_from and b.patients > 0
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

-- More distinct patients in a day than the actor's own usual day and their
-- role's, by a factor, as in 0071. A long window reads its days before the last
-- from the roll-up and only its last day from the events; a short one reads its
-- actors' days from the events. Evidence is read for the spikes only.
create or replace function monitor.detect_volume_spike(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
as $$
#variable_conflict use_column
declare
  first_day constant date := (p_from at time zone 'UTC')::date;
  last_day constant date := (p_to at time zone 'UTC')::date;
  raw_day date := first_day;
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
  else
    raw_day := monitor.first_unrolled_day(first_day, last_day);
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
        from monitor.day_events(
          raw_day::timestamp at time zone 'UTC', p_to, actors
        ) e
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
      union all
      select r.practice_id, r.actor_kind, r.actor_id, r.day, r.patient_role,
        r.patients::bigint, r.patients_first, r.patients_last
      from monitor.actor_days r
      where r.day >= first_day and r.day < raw_day
        and r.actor_kind in ('user', 'agent', 'api_token') and r.patients > 0
        and r.patients_last > p_from
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

-- Bulk exports and unusually large results, by one event or by a day's total, as
-- in 0071. A long window reads its days before the last from the roll-up, with
-- their evidence; the events of its last day (or a short window's actors) are
-- summed in one pass that keeps each actor-day's 100 largest reads as it goes,
-- in the roll-up's order (rows, then time, then id).
create or replace function monitor.detect_bulk_access(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
as $$
#variable_conflict use_column
declare
  first_day constant date := (p_from at time zone 'UTC')::date;
  last_day constant date := (p_to at time zone 'UTC')::date;
  raw_day date := first_day;
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
  else
    raw_day := monitor.first_unrolled_day(first_day, last_day);
  end if;
  return query
    with day_rows as (
      select e.practice_id, e.actor_kind, e.actor_id,
        (e.occurred_at at time zone 'UTC')::date as day,
        sum(e.row_count) as total,
        max(e.row_count) filter (where e.action = 'export') as biggest_export,
        max(e.row_count) as biggest,
        min(e.occurred_at) as first_at, max(e.occurred_at) as last_at,
        (array_agg(e.id order by e.row_count desc, e.occurred_at, e.id))[1:100]
          as evidence
      from monitor.day_events(raw_day::timestamp at time zone 'UTC', p_to, actors) e
      where e.actor_kind <> 'system' and e.outcome = 'success' and e.row_count > 0
      group by 1, 2, 3, 4
      -- Only the actor-days with rows read in the window, as before.
      having max(e.occurred_at) > p_from
      union all
      select r.practice_id, r.actor_kind, r.actor_id, r.day, r.rows_total,
        r.rows_biggest_export, r.rows_biggest, r.rows_first, r.rows_last,
        r.rows_evidence
      from monitor.actor_days r
      where r.day >= first_day and r.day < raw_day
        and r.actor_kind <> 'system' and r.rows_total > 0
        and r.rows_last > p_from
    )
    select d.practice_id, 'bulk_access', 'high', d.actor_kind, d.actor_id,
      '{}'::uuid[], d.evidence,
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

-- Unexplained accesses, one alert per member and hour, as in 0071. The window is
-- grouped one UTC day at a time (an hour never straddles two days): each day's
-- accesses are grouped by member and hour in memory, where a month's spilled to
-- disk. A day's accesses are sorted by member, hour and event once and grouped
-- in that order: hashing the groups instead keeps a sort for every distinct
-- aggregate of every group, which measured slower. Limitation: the explanations
-- are hashed again for each day of the window.
create or replace function monitor.detect_unexplained_access(
  p_from timestamptz, p_to timestamptz
) returns setof monitor.finding
language plpgsql stable
set search_path = pg_catalog
set work_mem = '256MB'
set enable_hashagg = off
as $$
#variable_conflict use_column
declare
  day_lo timestamp := (p_from at time zone 'UTC')::date;
  last_day constant timestamp := (p_to at time zone 'UTC')::date;
  -- Timestamps count microseconds, so (start - 1 us, next start - 1 us] is the
  -- day [start, next start) in the (from, to] form the accesses are asked in.
  tick constant interval := interval '1 microsecond';
begin
  while day_lo <= last_day loop
    return query
      select u.practice_id, 'unexplained_access', 'medium', 'user', u.actor_id,
        (array_agg(distinct u.patient_id))[1:100],
        (array_agg(distinct u.id))[1:100],
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
        from monitor.unexplained_accesses(
          greatest(p_from, (day_lo at time zone 'UTC') - tick),
          least(p_to, ((day_lo + interval '1 day') at time zone 'UTC') - tick)
        ) a
      ) u
      group by u.practice_id, u.actor_id, u.hour;
    day_lo := day_lo + interval '1 day';
  end loop;
end
$$;

-- One run of every detector over what is new since its high-water mark, as in
-- 0062; a run over a long window first makes the roll-up of its days current.
create or replace function monitor.tick(p_now timestamptz)
returns setof monitor.finding
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
  -- A long window (the first run after downtime) reads finished days from the
  -- roll-up of actor-days: make it current first.
  if p_now - earliest > monitor.short_window() then
    perform monitor.refresh_actor_days(
      (earliest at time zone 'UTC')::date, (p_now at time zone 'UTC')::date
    );
  end if;
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

-- Every detector over an explicit window, without touching the high-water marks,
-- as in 0062; the detectors that read the roll-up get it made current first.
create or replace function monitor.scan(
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
  if p_to - p_from > monitor.short_window()
    and (p_only is null or p_only in ('volume_spike', 'bulk_access'))
  then
    perform monitor.refresh_actor_days(
      (p_from at time zone 'UTC')::date, (p_to at time zone 'UTC')::date
    );
  end if;
  foreach d in array monitor.detectors() loop
    continue when p_only is not null and d <> p_only;
    return query execute format('select * from monitor.%I($1, $2)', 'detect_' || d)
      using p_from, p_to;
  end loop;
end
$$;

-- Only the security definer entry points are callable, as for the other
-- monitor functions.
revoke all on function monitor.build_actor_day(date) from public;
revoke all on function monitor.refresh_actor_days(date, date) from public;
revoke all on function monitor.first_unrolled_day(date, date) from public;
revoke all on function monitor.actor_days_to_build(date, date) from public;
revoke all on function monitor.stale_actor_days(date, date) from public;
revoke all on function monitor.build_actor_day_as_system(date) from public;
grant execute on function monitor.stale_actor_days(date, date) to perpetua_service;
grant execute on function monitor.build_actor_day_as_system(date)
  to perpetua_service;
