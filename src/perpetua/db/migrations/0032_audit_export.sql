-- A practice's own copy of its sealed audit log: every sealed event in index order
-- with the signed checkpoints over them, for owners and managers, recorded as an
-- `export` audit event. The archive itself is assembled by audit/export.py; the
-- practice checks it with `perpetua audit verify --archive`, offline.

-- Owners and managers may read their own practice's index and checkpoints (no
-- PHI: identifiers, hashes and signatures), only through the function below.
create policy sealed_practice_read on audit.sealed for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('audit_log', 'export')) is not null
  );
create policy checkpoints_practice_read on audit.checkpoints for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('audit_log', 'export')) is not null
  );

-- The version 2 canonical line of one stored event at one index; the same text
-- the sealer rendered in audit_api.seal_next (0031) and db_verify.py renders.
create function audit.event_line_v2(e audit.events, p_index bigint)
returns bytea
language sql stable
set search_path = pg_catalog
as $$
  select convert_to(
    '{"action":' || to_json(e.action)::text
    || ',"actor_id":' || coalesce('"' || e.actor_id::text || '"', 'null')
    || ',"actor_kind":' || to_json(e.actor_kind)::text
    || ',"actor_role":' || coalesce(to_json(e.actor_role)::text, 'null')
    || ',"id":"' || e.id::text
    || '","index":' || p_index::text
    || ',"ip":' || coalesce('"' || host(e.client_ip) || '"', 'null')
    || ',"outcome":' || to_json(e.outcome)::text
    || ',"patient_ids":' || to_json(e.patient_ids)::text
    || ',"practice_id":"' || e.practice_id::text
    || '","purpose_of_use":' || coalesce(to_json(e.purpose_of_use)::text, 'null')
    || ',"reason":' || coalesce(to_json(e.reason)::text, 'null')
    || ',"request_id":' || coalesce(to_json(e.request_id)::text, 'null')
    || ',"resource_ids":' || to_json(e.resource_ids)::text
    || ',"resource_type":' || to_json(e.resource_type)::text
    || ',"row_count":' || e.row_count::text
    || ',"time":"' || to_char(
      e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
    )
    || '","user_agent":' || coalesce(to_json(e.user_agent)::text, 'null')
    || ',"v":2}',
    'UTF8'
  )
$$;

-- Checkpoints first (oldest first), then every event they cover, in index order.
-- Version 2 events come as their canonical line; version 1 events as columns,
-- encoded by the caller (canonical.py), which alone knows the version 1 rules.
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
  row_count integer
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
           null, null::integer
    from audit.checkpoints c
    where c.practice_id = perpetua.practice_id() and c.size <= sealed_size
    order by c.size;

  return query
    select 'event', s.leaf_index, s.encoding,
           case when s.encoding = 2 then audit.event_line_v2(e, s.leaf_index) end,
           null::integer, e.id, e.occurred_at, e.actor_kind, e.actor_id,
           e.actor_role, e.action, e.resource_type, e.resource_ids, e.patient_ids,
           e.purpose_of_use, e.reason, host(e.client_ip), e.user_agent,
           e.request_id, e.outcome, e.row_count
    from audit.sealed s
    left join audit.events e
      on e.occurred_at = s.occurred_at and e.id = s.event_id
      and e.practice_id = s.practice_id
    where s.practice_id = perpetua.practice_id() and s.leaf_index < sealed_size
    order by s.leaf_index;
end
$$;

revoke all on function audit.event_line_v2(audit.events, bigint) from public;
revoke all on function audit_api.export_log() from public;
grant execute on function audit_api.export_log() to perpetua_service;
