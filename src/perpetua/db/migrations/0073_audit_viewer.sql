-- Reading the audit log in the console and the API: a filtered, paged list of the
-- practice's events, one event with what its inclusion proof needs, the signed
-- checkpoints and the sealed leaves that proofs are built from. Owners and
-- managers only (the `audit_log` permissions), decided here and by the policies
-- on audit.events; every refusal is recorded. A list or an event shows which
-- patients were accessed, with their names: reading it is recorded like any other
-- PHI read, in the same transaction, with those patients named on the event.

-- The events matching the filters, newest first, after the keyset position
-- (p_before_time, p_before_id). p_access is what the caller does with the rows:
-- `view` (a page of the viewer) or `export` (the CSV download), each under its
-- own permission and recorded as such. Patient names come as ciphertexts
-- aligned with patient_ids (NULL where the policies hide the patient), opened
-- by the service with the practice's keys.
create function audit_api.list_events(
  p_access text,
  p_member uuid,
  p_patient uuid,
  p_action text,
  p_purpose text,
  p_from timestamptz,
  p_to timestamptz,
  p_before_time timestamptz,
  p_before_id uuid,
  p_limit integer
)
returns table (
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
  leaf_index bigint,
  patient_names bytea[]
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found audit.events[];
  patients uuid[];
begin
  if p_access not in ('view', 'export') then
    raise exception 'unknown access to the audit log' using errcode = '22023';
  end if;
  if perpetua.permits('audit_log', p_access) is null then
    perform phi_api.deny(p_access, 'audit_log', '{}');
    return;
  end if;

  -- Bounds written so that the practice/time index serves every filter
  -- combination; the policy on audit.events narrows to the practice again.
  select coalesce(
      array_agg(s.e order by (s.e).occurred_at desc, (s.e).id desc), '{}'
    )
    into found
  from (
    select e from audit.events e
    where e.practice_id = perpetua.practice_id()
      and e.occurred_at >= coalesce(p_from, '-infinity')
      and e.occurred_at < coalesce(p_to, 'infinity')
      and (e.occurred_at, e.id) < (
        coalesce(p_before_time, 'infinity'),
        coalesce(p_before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
      )
      and (p_member is null or e.actor_id = p_member)
      and (p_patient is null or e.patient_ids @> array[p_patient])
      and (p_action is null or e.action = p_action)
      and (p_purpose is null or e.purpose_of_use = p_purpose)
    order by e.occurred_at desc, e.id desc
    limit least(greatest(coalesce(p_limit, 50), 1), 100000)
  ) s(e);

  -- Recorded before any row is returned: no audit row, no data.
  select coalesce(array_agg(distinct p), '{}') into patients
  from unnest(found) f, unnest(f.patient_ids) p;
  perform audit.record(p_access, 'audit_log', '{}', patients, 'success',
    cardinality(found));

  return query
    select f.id, f.occurred_at, f.actor_kind, f.actor_id, f.actor_role, f.action,
           f.resource_type, f.resource_ids, f.patient_ids, f.purpose_of_use,
           f.reason, host(f.client_ip), f.user_agent, f.request_id, f.outcome,
           f.row_count, s.leaf_index,
           array(
             select p.name_ct
             from unnest(f.patient_ids) with ordinality u(pid, n)
             left join phi.patients p on p.id = u.pid
             order by u.n
           )
    from unnest(found) with ordinality f
    left join audit.sealed s
      on s.event_id = f.id and s.practice_id = f.practice_id
    order by f.ordinality;
end
$$;

-- One event of the practice with what proving it needs: its index, the leaf
-- stored when it was sealed, and its canonical line as rendered from the row now
-- (version 2), so the caller can tell a changed event from an intact one.
-- Sealed events are found through the index on audit.sealed; unsealed ones only
-- among the events of the last day, since audit.events has no index on the id
-- alone and a search through every month would let one request read the whole
-- table. An unsealed event older than that is one the sealer missed, which
-- `perpetua audit verify` reports.
create function audit_api.read_event(p_event uuid)
returns table (
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
  leaf_index bigint,
  encoding smallint,
  leaf_hash bytea,
  line bytea,
  patient_names bytea[]
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  ev audit.events;
  seal audit.sealed;
begin
  if perpetua.permits('audit_log', 'view') is null then
    perform phi_api.deny('view', 'audit_log', array[p_event]);
    return;
  end if;

  select * into seal from audit.sealed s
    where s.event_id = p_event and s.practice_id = perpetua.practice_id();
  if seal.event_id is not null then
    select * into ev from audit.events e
      where e.occurred_at = seal.occurred_at and e.id = p_event
        and e.practice_id = perpetua.practice_id();
  else
    select * into ev from audit.events e
      where e.id = p_event and e.practice_id = perpetua.practice_id()
        and e.occurred_at >= clock_timestamp() - interval '1 day';
  end if;

  if ev.id is null then
    perform audit.record('view', 'audit_log', array[p_event], '{}', 'not_found', 0);
    return;
  end if;
  perform audit.record('view', 'audit_log', array[p_event], ev.patient_ids,
    'success', 1);

  return query
    select ev.id, ev.occurred_at, ev.actor_kind, ev.actor_id, ev.actor_role,
           ev.action, ev.resource_type, ev.resource_ids, ev.patient_ids,
           ev.purpose_of_use, ev.reason, host(ev.client_ip), ev.user_agent,
           ev.request_id, ev.outcome, ev.row_count, seal.leaf_index,
           seal.encoding, seal.leaf_hash,
           case when seal.leaf_index is not null
             then audit.event_line_v2(ev, seal.leaf_index) end,
           array(
             select p.name_ct
             from unnest(ev.patient_ids) with ordinality u(pid, n)
             left join phi.patients p on p.id = u.pid
             order by u.n
           );
end
$$;

-- Signed checkpoints, newest first: the one of size p_size, or those below
-- p_before (all when NULL), at most p_limit. Hashes and signatures only, no PHI,
-- so a successful read is not recorded; a refusal is.
create function audit_api.list_checkpoints(
  p_size bigint, p_before bigint, p_limit integer
)
returns table (size bigint, root bytea, note text, key_version integer,
               signed_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if perpetua.permits('audit_log', 'view') is null then
    perform phi_api.deny('view', 'audit_log', '{}');
    return;
  end if;
  return query
    select c.size, c.root, c.note, c.key_version, c.signed_at
    from audit.checkpoints c
    where c.practice_id = perpetua.practice_id()
      and (p_size is null or c.size = p_size)
      and c.size < coalesce(p_before, 9223372036854775807)
    order by c.size desc
    limit least(greatest(coalesce(p_limit, 1), 1), 1000);
end
$$;

-- The stored leaf hashes of indices 0 .. p_size - 1, joined into one byte string
-- in index order (32 bytes each): what inclusion and consistency proofs are
-- computed from. No PHI; refusals are recorded.
create function audit_api.sealed_leaves(p_size bigint)
returns table (leaves bytea)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if perpetua.permits('audit_log', 'view') is null then
    perform phi_api.deny('view', 'audit_log', '{}');
    return;
  end if;
  return query
    select coalesce(string_agg(s.leaf_hash, ''::bytea order by s.leaf_index), '')
    from audit.sealed s
    where s.practice_id = perpetua.practice_id() and s.leaf_index < p_size;
end
$$;

-- The patient access report, with p_access `view` (the page) or `export` (the
-- CSV), each under its own permission. It replaces the report of 0023, which
-- stopped at 1,000 events: a practice answering a patient's request for an
-- accounting of accesses must give all of them. The event recording this read
-- names how many accesses it showed; it appears in the next report.
create function audit_api.patient_access_report(p_patient uuid, p_access text)
returns table (
  occurred_at timestamptz, actor_kind text, actor_id uuid, actor_role text,
  action text, resource_type text, purpose_of_use text, reason text,
  client_ip inet, outcome text, request_id text
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found audit.events[];
begin
  if p_access not in ('view', 'export') then
    raise exception 'unknown access to the audit log' using errcode = '22023';
  end if;
  if perpetua.permits('audit_log', p_access) is null then
    perform phi_api.deny(p_access, 'audit_log', array[p_patient]);
    return;
  end if;
  select coalesce(
      array_agg(e order by e.occurred_at desc, e.id desc), '{}'
    )
    into found
  from audit.events e
  where e.practice_id = perpetua.practice_id()
    and e.patient_ids @> array[p_patient];
  perform audit.record(p_access, 'audit_log', array[p_patient], array[p_patient],
    'success', cardinality(found));
  return query
    select f.occurred_at, f.actor_kind, f.actor_id, f.actor_role, f.action,
           f.resource_type, f.purpose_of_use, f.reason, f.client_ip, f.outcome,
           f.request_id
    from unnest(found) with ordinality f
    order by f.ordinality;
end
$$;

create or replace function audit_api.patient_access_report(p_patient uuid)
returns table (
  occurred_at timestamptz, actor_kind text, actor_id uuid, actor_role text,
  action text, resource_type text, purpose_of_use text, reason text,
  client_ip inet, outcome text, request_id text
)
language sql volatile security definer
set search_path = pg_catalog
as $$
  select * from audit_api.patient_access_report(p_patient, 'view')
$$;

revoke all on function audit_api.list_events(
  text, uuid, uuid, text, text, timestamptz, timestamptz, timestamptz, uuid, integer
) from public;
revoke all on function audit_api.read_event(uuid) from public;
revoke all on function audit_api.list_checkpoints(bigint, bigint, integer)
  from public;
revoke all on function audit_api.sealed_leaves(bigint) from public;
revoke all on function audit_api.patient_access_report(uuid, text) from public;
grant execute on function audit_api.list_events(
  text, uuid, uuid, text, text, timestamptz, timestamptz, timestamptz, uuid, integer
) to perpetua_service;
grant execute on function audit_api.read_event(uuid) to perpetua_service;
grant execute on function audit_api.list_checkpoints(bigint, bigint, integer)
  to perpetua_service;
grant execute on function audit_api.sealed_leaves(bigint) to perpetua_service;
grant execute on function audit_api.patient_access_report(uuid, text)
  to perpetua_service;
