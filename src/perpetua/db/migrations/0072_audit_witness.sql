-- Witnessing the audit log: copies of signed checkpoints that leave Perpetua's
-- control, so that whoever holds the signing key and the database cannot later
-- rewrite the log and sign it anew without the copies disagreeing.
--
-- Each day, for each practice whose newest checkpoint has not been witnessed on a
-- channel yet, the job claims (practice, channel, day) here, then sends the
-- checkpoint: by email to the owners (through the outbox, in the claiming
-- transaction) or to object storage under a compliance-mode Object Lock. Several
-- service processes may run the job; the claim's primary key lets one of them
-- through per day and channel, and a claim whose transaction rolls back (the
-- object store was down) frees the day for the next attempt.
--
-- audit.witnessings records what left, where to and when: practice, checkpoint
-- size and root, the signed note, channel, destination. Append-only like the rest
-- of the audit schema. Owners and managers read their own practice's rows through
-- audit_api.witnessed(); only the system writes them.

create table audit.witness_claims (
  practice_id uuid not null,
  channel text not null check (channel in ('email', 'object_store')),
  day date not null,
  claimed_at timestamptz not null,
  primary key (practice_id, channel, day)
);

create table audit.witnessings (
  id bigint generated always as identity primary key,
  practice_id uuid not null,
  size bigint not null,
  root bytea not null check (length(root) = 32),
  note text not null,
  channel text not null check (channel in ('email', 'object_store')),
  destination text not null check (length(destination) between 3 and 1024),
  day date not null,
  witnessed_at timestamptz not null,
  foreign key (practice_id, size) references audit.checkpoints (practice_id, size),
  foreign key (practice_id, channel, day)
    references audit.witness_claims (practice_id, channel, day)
);
create index witnessings_latest on audit.witnessings
  (practice_id, channel, witnessed_at desc);

create trigger witness_claims_append_only before update or delete
  on audit.witness_claims
  for each row execute function audit.refuse_seal_change();
create trigger witness_claims_no_truncate before truncate on audit.witness_claims
  for each statement execute function audit.refuse_seal_change();
create trigger witnessings_append_only before update or delete on audit.witnessings
  for each row execute function audit.refuse_seal_change();
create trigger witnessings_no_truncate before truncate on audit.witnessings
  for each statement execute function audit.refuse_seal_change();

alter table audit.witness_claims enable row level security;
alter table audit.witness_claims force row level security;
alter table audit.witnessings enable row level security;
alter table audit.witnessings force row level security;

-- The sealer (the owner's code acting as the system) claims and records; rows
-- are never changed, so there is no update policy to grant.
create policy witness_claims_sealer on audit.witness_claims for all
  using ((select audit.is_sealer())) with check ((select audit.is_sealer()));
create policy witnessings_sealer on audit.witnessings for all
  using ((select audit.is_sealer())) with check ((select audit.is_sealer()));

-- A practice sees only its own witnessings, and only those who may view its
-- audit log (owners and managers).
create policy witnessings_practice_read on audit.witnessings for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.permits('audit_log', 'view')) is not null
  );

-- Practices with a checkpoint newer than the last one witnessed on the channel
-- and no claim for the day yet: what the job has left to do today.
create function audit_api.witness_pending(p_channel text, p_day date)
returns setof uuid
language sql stable security definer
set search_path = pg_catalog
as $$
  select s.practice_id
  from audit.log_state s
  where (select audit.is_sealer())
    and s.size > coalesce(
      (select max(w.size) from audit.witnessings w
        where w.practice_id = s.practice_id and w.channel = p_channel),
      0
    )
    and exists (
      select 1 from audit.checkpoints c where c.practice_id = s.practice_id
    )
    and not exists (
      select 1 from audit.witness_claims k
      where k.practice_id = s.practice_id and k.channel = p_channel
        and k.day = p_day
    )
  order by s.practice_id
$$;

-- Claim one practice's channel for the day and return the checkpoint to witness:
-- its newest, when that one is not witnessed on the channel yet. Returns nothing
-- when there is nothing new or when another process holds or used the claim (a
-- concurrent claimer waits on the key, then finds it taken).
create function audit_api.witness_claim(
  p_practice uuid, p_channel text, p_day date, p_now timestamptz
)
returns table (size bigint, root bytea, note text, signed_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  newest audit.checkpoints;
  claimed integer;
begin
  if not audit.is_sealer() then
    raise exception 'only the system witnesses the audit log' using errcode = 'PR403';
  end if;
  select * into newest from audit.checkpoints c
    where c.practice_id = p_practice order by c.size desc limit 1;
  if newest.size is null or exists (
    select 1 from audit.witnessings w
    where w.practice_id = p_practice and w.channel = p_channel
      and w.size >= newest.size
  ) then
    return;
  end if;

  insert into audit.witness_claims (practice_id, channel, day, claimed_at)
    values (p_practice, p_channel, p_day, p_now)
    on conflict do nothing;
  get diagnostics claimed = row_count;
  if claimed = 0 then
    return;
  end if;
  return query select newest.size, newest.root, newest.note, newest.signed_at;
end
$$;

-- Record one copy that left: the checkpoint at p_size, sent on the channel to the
-- destination under this transaction's claim for the day.
create function audit_api.witness_record(
  p_practice uuid,
  p_size bigint,
  p_channel text,
  p_destination text,
  p_day date,
  p_at timestamptz
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if not audit.is_sealer() then
    raise exception 'only the system witnesses the audit log' using errcode = 'PR403';
  end if;
  insert into audit.witnessings (
    practice_id, size, root, note, channel, destination, day, witnessed_at
  )
  select c.practice_id, c.size, c.root, c.note, p_channel, p_destination, p_day,
         p_at
  from audit.checkpoints c
  where c.practice_id = p_practice and c.size = p_size;
  if not found then
    raise exception 'no checkpoint of that size to witness' using errcode = 'PA422';
  end if;
end
$$;

-- The last witnessing on each channel of the caller's practice, one row per
-- destination it reached (every owner's address, the object's key). Owners and
-- managers only; no PHI, so the read is not itself an audit event.
create function audit_api.witnessed()
returns table (
  channel text,
  size bigint,
  root bytea,
  note text,
  destination text,
  witnessed_at timestamptz
)
language plpgsql stable security definer
set search_path = pg_catalog
as $$
begin
  if perpetua.practice_id() is null
     or perpetua.permits('audit_log', 'view') is null then
    raise exception 'only owners and managers see the witnessed checkpoint'
      using errcode = 'PR403';
  end if;
  return query
    with latest as (
      select w.channel, max(w.witnessed_at) as at
      from audit.witnessings w
      where w.practice_id = perpetua.practice_id()
      group by w.channel
    )
    select w.channel, w.size, w.root, w.note, w.destination, w.witnessed_at
    from audit.witnessings w
    join latest l on l.channel = w.channel and l.at = w.witnessed_at
    where w.practice_id = perpetua.practice_id()
    order by w.channel, w.destination;
end
$$;

revoke all on function audit_api.witness_pending(text, date) from public;
revoke all on function audit_api.witness_claim(uuid, text, date, timestamptz)
  from public;
revoke all on function
  audit_api.witness_record(uuid, bigint, text, text, date, timestamptz) from public;
revoke all on function audit_api.witnessed() from public;
grant execute on function audit_api.witness_pending(text, date) to perpetua_service;
grant execute on function audit_api.witness_claim(uuid, text, date, timestamptz)
  to perpetua_service;
grant execute on function
  audit_api.witness_record(uuid, bigint, text, text, date, timestamptz)
  to perpetua_service;
grant execute on function audit_api.witnessed() to perpetua_service;
