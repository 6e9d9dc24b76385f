-- The audit trail of PHI access, written by the database in the same transaction as
-- the access itself: a read function records its event before it returns a row, so
-- if the event cannot be written, no data leaves. Events are append-only (no
-- UPDATE, DELETE or TRUNCATE, by privilege and by trigger) and partitioned by month
-- so that whole months can be archived after seven years.

create schema audit;
create schema audit_api;
grant usage on schema audit_api to perpetua_service;

create table audit.events (
  id uuid not null default gen_random_uuid(),
  practice_id uuid not null,
  occurred_at timestamptz not null default clock_timestamp(),
  actor_kind text not null
    check (actor_kind in ('user', 'agent', 'api_token', 'staff', 'system')),
  actor_id uuid not null,
  actor_role text,
  action text not null check (action in (
    'view', 'search', 'create', 'update', 'delete', 'export', 'playback',
    'api_call', 'break_glass'
  )),
  resource_type text not null,
  resource_ids uuid[] not null default '{}',
  patient_ids uuid[] not null default '{}',
  purpose_of_use text not null
    check (purpose_of_use in ('TREAT', 'HPAYMT', 'HOPERAT', 'ETREAT', 'BTG')),
  reason text check (length(reason) <= 500),
  client_ip inet,
  user_agent text check (length(user_agent) <= 400),
  request_id text not null,
  outcome text not null check (outcome in ('success', 'denied', 'not_found')),
  row_count integer not null default 0,
  primary key (occurred_at, id)
) partition by range (occurred_at);

create index events_practice_time on audit.events (practice_id, occurred_at);
create index events_patients on audit.events using gin (patient_ids);

-- Anything outside the prepared months still lands somewhere: refusing it would
-- refuse the read it records.
create table audit.events_default partition of audit.events default;

create function audit.ensure_partitions(p_from date, p_months integer)
returns integer
language plpgsql
set search_path = pg_catalog
as $$
declare
  made integer := 0;
  month_start date;
  part text;
begin
  for i in 0 .. p_months - 1 loop
    month_start := (date_trunc('month', p_from) + make_interval(months => i))::date;
    part := 'events_' || to_char(month_start, 'YYYY_MM');
    if to_regclass('audit.' || part) is null then
      execute format(
        'create table audit.%I partition of audit.events for values from (%L) '
        'to (%L)',
        part,
        month_start,
        (month_start + interval '1 month')::date
      );
      made := made + 1;
    end if;
  end loop;
  return made;
end
$$;

select audit.ensure_partitions((now() - interval '1 month')::date, 15);

create function audit.refuse_change() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  raise exception 'audit events are append-only' using errcode = 'PA001';
end
$$;

create trigger events_append_only before update or delete on audit.events
  for each row execute function audit.refuse_change();
create trigger events_no_truncate before truncate on audit.events
  for each statement execute function audit.refuse_change();

alter table audit.events enable row level security;
alter table audit.events force row level security;

create policy events_insert on audit.events for insert
  with check (practice_id = (select perpetua.practice_id()));
create policy events_read on audit.events for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('audit_log', 'view')) is not null
  );

-- Record one event for the current claims. Claims without a practice raise:
-- fail closed, so the statement that wanted to read PHI fails with it.
create function audit.record(
  p_action text,
  p_resource_type text,
  p_resource_ids uuid[],
  p_patient_ids uuid[],
  p_outcome text,
  p_row_count integer
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  c jsonb := perpetua.valid_claims();
begin
  if c is null or not c ? 'practice_id' then
    raise exception 'no valid claims: access refused' using errcode = 'PR401';
  end if;
  -- Whatever makes the write fail, the caller sees one clear refusal and the
  -- statement that wanted the data fails with it.
  begin
  insert into audit.events (
    practice_id, actor_kind, actor_id, actor_role, action, resource_type,
    resource_ids, patient_ids, purpose_of_use, reason, client_ip, user_agent,
    request_id, outcome, row_count
  ) values (
    (c ->> 'practice_id')::uuid,
    c ->> 'actor_kind',
    (c ->> 'sub')::uuid,
    c ->> 'practice_role',
    p_action,
    p_resource_type,
    coalesce(p_resource_ids, '{}'),
    coalesce(
      (select array_agg(distinct x) from unnest(p_patient_ids) x where x is not null),
      '{}'
    ),
    perpetua.effective_purpose(),
    left(c ->> 'reason', 500),
    case when c ->> 'client_ip' ~ '^[0-9a-fA-F.:]+$'
      then (c ->> 'client_ip')::inet end,
    left(c ->> 'user_agent', 400),
    c ->> 'request_id',
    p_outcome,
    coalesce(p_row_count, 0)
  );
  exception when others then
    raise exception 'the access could not be recorded' using errcode = 'PA500';
  end;
end
$$;

-- A refusal that the caller's transaction rolled back is recorded again here, in a
-- transaction of its own, so denied attempts are never lost.
create function audit_api.record_denied(
  p_action text, p_resource_type text, p_resource_ids uuid[]
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  select audit.record(
    p_action, p_resource_type, p_resource_ids, '{}', 'denied', 0
  )
$$;

revoke all on all functions in schema audit from public;
revoke all on all functions in schema audit_api from public;
grant execute on function audit_api.record_denied(text, text, uuid[])
  to perpetua_service;
