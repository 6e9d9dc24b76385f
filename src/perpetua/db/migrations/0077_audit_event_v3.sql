-- Version 3 of the sealed audit event: the leaf commits to the same columns as
-- version 2, but to their binary form instead of a JSON line, which PostgreSQL
-- writes at about half the cost (no JSON escaping, no time formatting, no
-- address formatting). The exact bytes are defined in audit/canonical.py
-- (event_bytes_v3) and docs/audit-log.md: PostgreSQL's binary form of one
-- record, every field length-prefixed and typed, nulls explicit.
--
-- New functions sit beside the version 2 ones of 0031 rather than replacing
-- them, so a version 2 log can still be produced for comparison; the sealer
-- uses these. db_verify.py renders the same bytes with its own query, so a
-- function replaced here cannot vouch for itself.

alter table audit.sealed drop constraint sealed_encoding_check;
alter table audit.sealed
  add constraint sealed_encoding_check check (encoding in (1, 2, 3));

-- The next committed events of a practice that have no index, oldest first, each
-- with its version 3 bytes at the index it will get (p_from onward); otherwise
-- exactly audit_api.seal_next. Text is sent as stored only when the client
-- encoding is the server's (UTF-8), hence the setting on the function.
create function audit_api.seal_next_v3(
  p_practice uuid,
  p_from bigint,
  p_after_at timestamptz,
  p_after_id uuid,
  p_limit integer
)
returns table (id uuid, occurred_at timestamptz, line bytea)
language sql stable security definer
set search_path = pg_catalog
set client_encoding = 'UTF8'
as $$
  select
    n.id,
    n.occurred_at,
    record_send(row(
      3, n.id, n.practice_id, p_from + n.position - 1, n.occurred_at,
      n.actor_kind, n.actor_id, n.actor_role, n.action, n.resource_type,
      n.resource_ids, n.patient_ids, n.purpose_of_use, n.reason,
      substr(inet_send(n.client_ip), 5), n.user_agent, n.request_id, n.outcome,
      n.row_count
    ))
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

-- Record a sealed batch of version 3 leaves; otherwise exactly
-- audit_api.seal_commit (0031).
create function audit_api.seal_commit_v3(
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
  select p_practice, p_from + n - 1, ev, at, leaf, 3
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

revoke all on function audit_api.seal_next_v3(
  uuid, bigint, timestamptz, uuid, integer
) from public;
revoke all on function audit_api.seal_commit_v3(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
) from public;
grant execute on function audit_api.seal_next_v3(
  uuid, bigint, timestamptz, uuid, integer
) to perpetua_service;
grant execute on function audit_api.seal_commit_v3(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
) to perpetua_service;
