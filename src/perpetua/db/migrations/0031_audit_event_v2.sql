-- Version 2 of the sealed audit event: every column of an audit row, including
-- its id and row_count, is committed to by the Merkle leaf.
--
-- The database renders each event's canonical line (the JSON text defined in
-- audit/canonical.py, version 2): to_json escapes text exactly as that
-- definition requires, and uuids, addresses and integers need no escaping (db_verify.py renders it again with its own query, so a
-- replaced function here cannot vouch for itself); the sealer hashes the line in Python and signs. Rendering
-- here instead of building every event in Python is what lets sealing keep pace
-- with a busy practice. Events sealed before this migration keep version 1: each
-- index row records the version its leaf was computed under, and verification
-- renders each event in the version it was sealed with.
--
-- The sealing functions of 0030 are replaced: seal_next returned columns for
-- the version 1 encoding, and seal_commit could not record the version.

alter table audit.sealed
  add column encoding smallint not null default 1 check (encoding in (1, 2));

drop function audit_api.seal_next(uuid, integer);
drop function audit_api.seal_commit(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
);

-- The next committed events of a practice that have no index, oldest first,
-- each with its version 2 line at the index it will get (p_from onward). Within
-- one sealing pass the caller passes the last event it sealed, so a long backlog
-- is walked once instead of re-probed from scan_from for every batch; the next
-- pass starts from scan_from again and finds anything that committed late.
create function audit_api.seal_next(
  p_practice uuid,
  p_from bigint,
  p_after_at timestamptz,
  p_after_id uuid,
  p_limit integer
)
returns table (id uuid, occurred_at timestamptz, line bytea)
language sql stable security definer
set search_path = pg_catalog
as $$
  select
    n.id,
    n.occurred_at,
    convert_to(
      '{"action":' || to_json(n.action)::text
      || ',"actor_id":' || coalesce('"' || n.actor_id::text || '"', 'null')
      || ',"actor_kind":' || to_json(n.actor_kind)::text
      || ',"actor_role":' || coalesce(to_json(n.actor_role)::text, 'null')
      || ',"id":"' || n.id::text
      || '","index":' || (p_from + n.position - 1)::text
      || ',"ip":' || coalesce('"' || host(n.client_ip) || '"', 'null')
      || ',"outcome":' || to_json(n.outcome)::text
      || ',"patient_ids":' || to_json(n.patient_ids)::text
      || ',"practice_id":"' || n.practice_id::text
      || '","purpose_of_use":' || coalesce(to_json(n.purpose_of_use)::text, 'null')
      || ',"reason":' || coalesce(to_json(n.reason)::text, 'null')
      || ',"request_id":' || coalesce(to_json(n.request_id)::text, 'null')
      || ',"resource_ids":' || to_json(n.resource_ids)::text
      || ',"resource_type":' || to_json(n.resource_type)::text
      || ',"row_count":' || n.row_count::text
      || ',"time":"' || to_char(
        n.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
      )
      || '","user_agent":' || coalesce(to_json(n.user_agent)::text, 'null')
      || ',"v":2}'
    , 'UTF8')
  from (
    select e.*, row_number() over (order by e.occurred_at, e.id) as position
    from (
      select e.*
      from audit.events e
      where (select audit.is_sealer())
        and e.practice_id = p_practice
        and e.occurred_at >= coalesce(
          (
            select s.scan_from from audit.log_state s
            where s.practice_id = p_practice
          ),
          '-infinity'
        )
        and (p_after_at is null or (e.occurred_at, e.id) > (p_after_at, p_after_id))
        and not exists (select 1 from audit.sealed x where x.event_id = e.id)
      order by e.occurred_at, e.id
      limit p_limit
    ) e
  ) n
  order by n.position
$$;

-- Record a sealed batch of version 2 leaves: indices from p_from on, the new
-- frontier and the signed checkpoint over it. p_from must be the size
-- seal_begin returned.
create function audit_api.seal_commit(
  p_practice uuid,
  p_from bigint,
  p_event_ids uuid[],
  p_occurred_at timestamptz[],
  p_leaf_hashes bytea[],
  p_frontier bytea,
  p_root bytea,
  p_note text,
  p_key_version integer,
  p_signed_at timestamptz
) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  current_size bigint;
  batch integer := coalesce(cardinality(p_event_ids), 0);
  newest timestamptz;
begin
  if not audit.is_sealer() then
    raise exception 'only the system seals the audit log' using errcode = 'PR403';
  end if;
  select s.size into current_size from audit.log_state s
    where s.practice_id = p_practice for update;
  if current_size is distinct from p_from then
    raise exception 'audit log moved while sealing' using errcode = 'PA409';
  end if;
  if batch = 0
     or cardinality(p_occurred_at) <> batch
     or cardinality(p_leaf_hashes) <> batch then
    raise exception 'a sealed batch needs one time and leaf per event'
      using errcode = 'PA422';
  end if;

  insert into audit.sealed (
    practice_id, leaf_index, event_id, occurred_at, leaf_hash, encoding
  )
  select p_practice, p_from + n - 1, ev, at, leaf, 2
  from unnest(p_event_ids, p_occurred_at, p_leaf_hashes) with ordinality
    as b(ev, at, leaf, n);

  insert into audit.checkpoints (
    practice_id, size, root, note, key_version, signed_at
  ) values (
    p_practice, p_from + batch, p_root, p_note, p_key_version, p_signed_at
  );

  -- Later passes only need to look at events from here on: anything older is
  -- sealed, unless its transaction is still open, which the margin covers.
  select max(t) into newest from unnest(p_occurred_at) t;
  update audit.log_state s set
    size = p_from + batch,
    frontier = p_frontier,
    scan_from = greatest(
      s.scan_from, least(newest, clock_timestamp() - audit.seal_margin())
    ),
    last_checkpoint_at = p_signed_at,
    updated_at = clock_timestamp()
  where s.practice_id = p_practice;
  return p_from + batch;
end
$$;

revoke all on function audit_api.seal_next(
  uuid, bigint, timestamptz, uuid, integer
) from public;
revoke all on function audit_api.seal_commit(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
) from public;
grant execute on function audit_api.seal_next(
  uuid, bigint, timestamptz, uuid, integer
) to perpetua_service;
grant execute on function audit_api.seal_commit(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
) to perpetua_service;
