-- Archiving audit months past retention: a whole monthly partition of
-- audit.events leaves the database only after every practice's events in it
-- were written to an encrypted archive file that was read back and proven
-- against a signed checkpoint (audit/archive.py). What stays behind is the
-- sealed index (one leaf hash per event, so every tree can still be recomputed
-- and every later checkpoint still verified) and one row per practice and month
-- below, signed with the practice's audit key so that nobody with the database
-- alone can pass a deleted event off as archived.

create table audit.archived_months (
  practice_id uuid not null,
  range_from timestamptz not null,
  range_to timestamptz not null,
  events bigint not null check (events > 0),
  file_sha256 bytea not null check (octet_length(file_sha256) = 32),
  -- A signed note over the fields above (audit/archive.py); the verifier
  -- re-derives the key from the keystore, never from here.
  note text not null,
  key_version integer not null check (key_version > 0),
  archived_at timestamptz not null default clock_timestamp(),
  primary key (practice_id, range_from),
  check (range_from < range_to)
);

create trigger archived_months_append_only before update or delete
  on audit.archived_months
  for each row execute function audit.refuse_seal_change();
create trigger archived_months_no_truncate before truncate on audit.archived_months
  for each statement execute function audit.refuse_seal_change();

alter table audit.archived_months enable row level security;
alter table audit.archived_months force row level security;
create policy archived_months_sealer on audit.archived_months for all
  using ((select audit.is_sealer())) with check ((select audit.is_sealer()));
-- The practice's own rows, for its export (a security definer function; no
-- login role has privileges on the table itself).
create policy archived_months_practice on audit.archived_months for select
  using (practice_id = (select perpetua.practice_id()));

-- The one way a partition of audit.events is dropped. Refused unless the
-- partition lies wholly before the seven-year line and every practice with
-- events in it has its archive row with the same count over the same range:
-- a bug in the archiving code cannot drop a month that was not archived.
create function audit.drop_archived_partition(p_partition regclass)
returns bigint
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  bound text;
  lower_at timestamptz;
  upper_at timestamptz;
  missing integer;
  dropped bigint;
begin
  if not audit.is_sealer() then
    raise exception 'only the system archives the audit log' using errcode = 'PR403';
  end if;
  select pg_get_expr(c.relpartbound, c.oid) into bound
  from pg_class c
  join pg_inherits i on i.inhrelid = c.oid
  where c.oid = p_partition and i.inhparent = 'audit.events'::regclass;
  if bound is null or bound = 'DEFAULT' then
    raise exception 'not a monthly partition of audit.events' using errcode = 'PA422';
  end if;
  lower_at := substring(bound from 'FROM \(''([^'']+)''\)')::timestamptz;
  upper_at := substring(bound from 'TO \(''([^'']+)''\)')::timestamptz;
  if upper_at > clock_timestamp() - interval '7 years' then
    raise exception 'audit events are kept seven years' using errcode = 'PA409';
  end if;

  execute format(
    'select count(*) from (select practice_id, count(*) as n from %s'
    ' group by practice_id) p'
    ' where not exists (select 1 from audit.archived_months a'
    '   where a.practice_id = p.practice_id and a.range_from = $1'
    '   and a.range_to = $2 and a.events = p.n)',
    p_partition
  ) into missing using lower_at, upper_at;
  if missing > 0 then
    raise exception '% practice(s) in this month are not archived', missing
      using errcode = 'PA409';
  end if;

  execute format('select count(*) from %s', p_partition) into dropped;
  execute format('alter table audit.events detach partition %s', p_partition);
  execute format('drop table %s', p_partition);
  return dropped;
end
$$;

revoke all on function audit.drop_archived_partition(regclass) from public;

-- The export now carries each sealed index's leaf hash, so that events moved
-- to a monthly archive still take their place in the practice's tree.
drop function audit_api.export_log();

create function audit_api.export_log()
returns table (
  kind text,
  at_index bigint,
  encoding smallint,
  line bytea,
  key_version integer,
  id uuid,
  occurred_at timestamptz,
  actor_kind text,
  actor_id uuid,
  actor_role text,
  action text,
  resource_type text,
  resource_ids uuid[],
  patient_ids uuid[],
  purpose_of_use text,
  reason text,
  ip text,
  user_agent text,
  request_id text,
  outcome text,
  row_count integer,
  leaf bytea,
  archived boolean
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  sealed_size bigint;
begin
  if perpetua.permits('audit_log', 'export') is null then
    perform phi_api.deny('export', 'audit_log', '{}');
    return;
  end if;

  -- Everything up to the newest checkpoint, fixed now: a sealing pass that
  -- commits while the rows stream out cannot add events no checkpoint covers.
  select coalesce(max(c.size), 0) into sealed_size from audit.checkpoints c
    where c.practice_id = perpetua.practice_id();
  perform audit.record('export', 'audit_log', '{}', '{}', 'success',
    least(sealed_size, 2147483647)::integer);

  return query
    select 'checkpoint', c.size, null::smallint, convert_to(c.note, 'UTF8'),
           c.key_version, null::uuid, null::timestamptz, null, null::uuid, null,
           null, null, null::uuid[], null::uuid[], null, null, null, null, null,
           null, null::integer, null::bytea, null::boolean
    from audit.checkpoints c
    where c.practice_id = perpetua.practice_id() and c.size <= sealed_size
    order by c.size;

  return query
    select 'event', s.leaf_index, s.encoding,
           case when s.encoding = 2 then audit.event_line_v2(e, s.leaf_index) end,
           null::integer, e.id, e.occurred_at, e.actor_kind, e.actor_id,
           e.actor_role, e.action, e.resource_type, e.resource_ids, e.patient_ids,
           e.purpose_of_use, e.reason, host(e.client_ip), e.user_agent,
           e.request_id, e.outcome, e.row_count, s.leaf_hash,
           e.id is null and exists (
             select 1 from audit.archived_months a
             where a.practice_id = s.practice_id
               and s.occurred_at >= a.range_from and s.occurred_at < a.range_to
           )
    from audit.sealed s
    left join audit.events e
      on e.occurred_at = s.occurred_at and e.id = s.event_id
      and e.practice_id = s.practice_id
    where s.practice_id = perpetua.practice_id() and s.leaf_index < sealed_size
    order by s.leaf_index;
end
$$;

revoke all on function audit_api.export_log() from public;
grant execute on function audit_api.export_log() to perpetua_service;

-- Monthly partitions are made ahead of time, so that events never pile up in the
-- default partition, which cannot be archived whole. The sealing job calls this
-- on every pass (cheap: a lookup per month once they exist); the lock keeps two
-- sealers from creating the same month at once.
create function audit_api.prepare_partitions() returns integer
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  perform pg_advisory_xact_lock(hashtext('audit.events partitions'));
  return audit.ensure_partitions((clock_timestamp() - interval '1 month')::date, 4);
end
$$;

revoke all on function audit_api.prepare_partitions() from public;
grant execute on function audit_api.prepare_partitions() to perpetua_service;
