-- Sealing the audit log: the tables that give each committed audit event a gapless
-- per-practice index, its Merkle leaf hash and the signed checkpoints over them.
--
-- audit.events stays exactly as it was: inserting an event takes no lock shared by
-- other writers. A sealing job finds committed events that have no index yet (an
-- anti-join, not a high-water mark, so an event that commits late with an earlier
-- timestamp is still found), numbers them in the order it finds them, and records
-- index, leaf hash and checkpoint in one transaction. Only the per-practice state
-- row is ever updated; the index and the checkpoints are append-only.
--
-- The job runs as the service role through the security definer functions in
-- audit_api below, with system claims. The hashing and signing happen in Python,
-- which holds the signing key; the database never sees it.

-- True only inside the owner's own code (a security definer function or the
-- owner's login) acting with system claims: the one caller that may read every
-- practice's events to seal or verify them.
create function audit.is_sealer() returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select coalesce((select perpetua.actor_kind()) = 'system', false)
    and current_user = (
      select pg_get_userbyid(relowner) from pg_class
      where oid = 'audit.events'::regclass
    )
$$;

create policy events_sealer on audit.events for select
  using ((select audit.is_sealer()));

-- One row per practice: how much of its log is sealed, the Merkle frontier at that
-- size, and from which event time on the job still looks for unsealed events.
create table audit.log_state (
  practice_id uuid primary key,
  size bigint not null default 0 check (size >= 0),
  frontier bytea not null default '\x0000000000000000'::bytea,
  scan_from timestamptz,
  last_checkpoint_at timestamptz,
  updated_at timestamptz not null default clock_timestamp()
);

-- Index -> event. The event is named by its full primary key, so that a lookup
-- prunes to one monthly partition. leaf_hash lets verification name the exact
-- event that changed when only the event row was touched.
create table audit.sealed (
  practice_id uuid not null,
  leaf_index bigint not null check (leaf_index >= 0),
  event_id uuid not null,
  occurred_at timestamptz not null,
  leaf_hash bytea not null check (length(leaf_hash) = 32),
  primary key (practice_id, leaf_index),
  unique (event_id)
);

create table audit.checkpoints (
  practice_id uuid not null,
  size bigint not null check (size > 0),
  root bytea not null check (length(root) = 32),
  note text not null,
  key_version integer not null check (key_version > 0),
  signed_at timestamptz not null,
  primary key (practice_id, size)
);

create function audit.refuse_seal_change() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  raise exception 'the sealed audit log is append-only' using errcode = 'PA001';
end
$$;

create trigger sealed_append_only before update or delete on audit.sealed
  for each row execute function audit.refuse_seal_change();
create trigger sealed_no_truncate before truncate on audit.sealed
  for each statement execute function audit.refuse_seal_change();
create trigger checkpoints_append_only before update or delete on audit.checkpoints
  for each row execute function audit.refuse_seal_change();
create trigger checkpoints_no_truncate before truncate on audit.checkpoints
  for each statement execute function audit.refuse_seal_change();
create trigger log_state_no_delete before delete on audit.log_state
  for each row execute function audit.refuse_seal_change();
create trigger log_state_no_truncate before truncate on audit.log_state
  for each statement execute function audit.refuse_seal_change();

alter table audit.log_state enable row level security;
alter table audit.log_state force row level security;
alter table audit.sealed enable row level security;
alter table audit.sealed force row level security;
alter table audit.checkpoints enable row level security;
alter table audit.checkpoints force row level security;

create policy log_state_sealer on audit.log_state for all
  using ((select audit.is_sealer())) with check ((select audit.is_sealer()));
create policy sealed_sealer on audit.sealed for all
  using ((select audit.is_sealer())) with check ((select audit.is_sealer()));
create policy checkpoints_sealer on audit.checkpoints for all
  using ((select audit.is_sealer())) with check ((select audit.is_sealer()));

-- How far behind the newest sealed event the search for unsealed events starts.
-- An event whose transaction stays open longer than this before committing is
-- not sealed by the job; `perpetua audit verify` reports it.
create function audit.seal_margin() returns interval
language sql immutable
set search_path = pg_catalog
as $$ select interval '2 minutes' $$;

-- Practices that have committed events without an index.
create function audit_api.seal_pending() returns setof uuid
language sql stable security definer
set search_path = pg_catalog
as $$
  select distinct e.practice_id
  from audit.events e
  where (select audit.is_sealer())
    and e.occurred_at >= coalesce(
      (select min(s.scan_from) from audit.log_state s), '-infinity'
    )
    and not exists (select 1 from audit.sealed x where x.event_id = e.id)
$$;

-- Lock one practice's log for this transaction and return its state. Two sealers
-- for one practice queue here instead of numbering the same events twice.
create function audit_api.seal_begin(p_practice uuid)
returns table (size bigint, frontier bytea)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if not audit.is_sealer() then
    raise exception 'only the system seals the audit log' using errcode = 'PR403';
  end if;
  insert into audit.log_state (practice_id) values (p_practice)
    on conflict (practice_id) do nothing;
  return query
    select s.size, s.frontier from audit.log_state s
    where s.practice_id = p_practice
    for update;
end
$$;

-- The next committed events of a practice that have no index, oldest first.
create function audit_api.seal_next(p_practice uuid, p_limit integer)
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
  outcome text
)
language sql stable security definer
set search_path = pg_catalog
as $$
  select
    e.id, e.occurred_at, e.actor_kind, e.actor_id, e.actor_role, e.action,
    e.resource_type, e.resource_ids, e.patient_ids, e.purpose_of_use, e.reason,
    host(e.client_ip), e.user_agent, e.request_id, e.outcome
  from audit.events e
  where (select audit.is_sealer())
    and e.practice_id = p_practice
    and e.occurred_at >= coalesce(
      (select s.scan_from from audit.log_state s where s.practice_id = p_practice),
      '-infinity'
    )
    and not exists (select 1 from audit.sealed x where x.event_id = e.id)
  order by e.occurred_at, e.id
  limit p_limit
$$;

-- Record a sealed batch: indices from p_from on, the new frontier and the signed
-- checkpoint over it. p_from must be the size seal_begin returned.
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

  insert into audit.sealed (practice_id, leaf_index, event_id, occurred_at, leaf_hash)
  select p_practice, p_from + n - 1, ev, at, leaf
  from unnest(p_event_ids, p_occurred_at, p_leaf_hashes) with ordinality
    as b(ev, at, leaf, n);

  insert into audit.checkpoints (
    practice_id, size, root, note, key_version, signed_at
  ) values (
    p_practice, p_from + batch, p_root, p_note, p_key_version, p_signed_at
  );

  -- Later batches only need to look at events from here on: anything older is
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

revoke all on function audit.is_sealer() from public;
revoke all on function audit.refuse_seal_change() from public;
revoke all on function audit.seal_margin() from public;
revoke all on function audit_api.seal_pending() from public;
revoke all on function audit_api.seal_begin(uuid) from public;
revoke all on function audit_api.seal_next(uuid, integer) from public;
revoke all on function audit_api.seal_commit(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
) from public;
grant execute on function audit.is_sealer() to perpetua_service;
grant execute on function audit_api.seal_pending() to perpetua_service;
grant execute on function audit_api.seal_begin(uuid) to perpetua_service;
grant execute on function audit_api.seal_next(uuid, integer) to perpetua_service;
grant execute on function audit_api.seal_commit(
  uuid, bigint, uuid[], timestamptz[], bytea[], bytea, bytea, text, integer,
  timestamptz
) to perpetua_service;
