-- Twilio recordings fetched by Perpetua itself: a durable queue of recordings to
-- download from the practice's own Twilio account, and whether to delete each
-- one at Twilio once it is stored.
--
-- A row holds Twilio's recording id, the call it belongs to, and the state of
-- the fetch (attempts, when to try again, the last error as a short code). It
-- holds no secret (the account SID and sealed auth token stay in
-- app.call_settings, read at fetch time) and no URL given by the callback: the
-- media URL is built from the stored account SID and the recording id, so a
-- callback cannot point the fetcher at another host. The service role reaches
-- the table only through the phi_api functions below; each request made to
-- Twilio is recorded as an audit event in the same transaction as its outcome.

alter table app.call_settings
  add column twilio_delete_after_fetch boolean not null default true;

create table phi.twilio_recording_fetches (
  id uuid primary key default gen_random_uuid(),
  practice_id uuid not null references app.practices (id),
  -- The call as Perpetua names it (derived from Twilio's CallSid). No foreign
  -- key: the recording callback may arrive before the call's status callback,
  -- and the fetch waits for the call rather than inventing one.
  call_id uuid not null,
  recording_sid text not null check (recording_sid ~ '^RE[0-9a-fA-F]{32}$'),
  channels integer not null default 1 check (channels between 1 and 2),
  duration_seconds integer not null default 0
    check (duration_seconds between 0 and 86400),
  -- pending: to fetch; delete_pending: stored, to delete at Twilio; done;
  -- opted_out: the practice keeps no such recording, nothing was requested;
  -- gone: Twilio has no such recording (404); refused: fetched but not safe to
  -- store (the call's transcript holds card numbers that cannot be silenced, or
  -- the bytes are not audio); failed: attempts exhausted;
  -- credentials_rejected: Twilio refused the stored credentials (401), waiting
  -- for the owner to save new ones.
  status text not null default 'pending' check (status in (
    'pending', 'delete_pending', 'done', 'opted_out', 'gone', 'refused', 'failed',
    'credentials_rejected'
  )),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text check (last_error ~ '^[a-z0-9_]{1,64}$'),
  deleted_at_twilio timestamptz,
  created_at timestamptz not null default now(),
  -- The database's clock, like app.call_settings.updated_at: a fetch stopped by
  -- rejected credentials is retried once the owner saved the settings after it.
  updated_at timestamptz not null default now(),
  unique (practice_id, recording_sid)
);
create index twilio_recording_fetches_due on phi.twilio_recording_fetches
  (next_attempt_at) where status in ('pending', 'delete_pending');

alter table phi.twilio_recording_fetches enable row level security;
alter table phi.twilio_recording_fetches force row level security;

-- The system queues and works the fetches; an owner may read them (the calls
-- settings page says when Twilio refused the credentials). The job finds due
-- rows before it acts in a practice, so the system without a practice may list
-- them too, through phi_api.twilio_fetches_due (ids only).
create policy twilio_fetches_read on phi.twilio_recording_fetches for select
  using (
    (
      practice_id = (select perpetua.practice_id())
      and (
        (select perpetua.actor_kind()) = 'system'
        or (
          (select perpetua.practice_role()) = 'owner'
          and (select perpetua.actor_kind()) = 'user'
        )
      )
    )
    or (
      (select perpetua.actor_kind()) = 'system'
      and (select perpetua.practice_id()) is null
    )
  );
create policy twilio_fetches_queue on phi.twilio_recording_fetches for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );
create policy twilio_fetches_work on phi.twilio_recording_fetches for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );

-- Queuing needs an executed BAA and a writable practice, like storing media.
create trigger twilio_fetches_guard before insert on phi.twilio_recording_fetches
  for each row execute function perpetua.guard_call_media_write();

-- Queue one recording; a retried callback for the same recording changes nothing.
create function phi_api.queue_twilio_recording(
  p_call uuid, p_recording_sid text, p_channels integer, p_duration integer,
  p_due timestamptz
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  made integer;
begin
  insert into phi.twilio_recording_fetches (
    practice_id, call_id, recording_sid, channels, duration_seconds,
    next_attempt_at
  ) values (
    perpetua.practice_id(), p_call, p_recording_sid, p_channels, p_duration, p_due
  )
  on conflict (practice_id, recording_sid) do nothing;
  get diagnostics made = row_count;
  return made = 1;
end
$$;

-- Fetches due by p_now, oldest first (system only), and one fetch of each
-- practice whose credentials Twilio rejected: the call settings are not visible
-- here (no practice is claimed yet), so phi_api.take_twilio_fetch decides, in
-- the practice, whether the owner saved new ones since.
create function phi_api.twilio_fetches_due(
  p_now timestamptz, p_practice uuid, p_limit integer
) returns table (id uuid, practice_id uuid)
language sql stable security definer
set search_path = pg_catalog
as $$
  (
    select f.id, f.practice_id
    from phi.twilio_recording_fetches f
    where (select perpetua.actor_kind()) = 'system'
      and (p_practice is null or f.practice_id = p_practice)
      and f.status in ('pending', 'delete_pending')
      and f.next_attempt_at <= p_now
    order by f.next_attempt_at
    limit p_limit
  )
  union all
  (
    select distinct on (f.practice_id) f.id, f.practice_id
    from phi.twilio_recording_fetches f
    where (select perpetua.actor_kind()) = 'system'
      and (p_practice is null or f.practice_id = p_practice)
      and f.status = 'credentials_rejected'
    order by f.practice_id, f.updated_at
  )
$$;

-- Take one due fetch of the claimed practice for p_lease: another worker (the
-- CLI beside `perpetua serve`) skips it meanwhile, and a worker that stops
-- midway leaves it due again when the lease ends. Returns nothing when the
-- fetch is not due. call_started_at is null while the call is unknown.
create function phi_api.take_twilio_fetch(
  p_id uuid, p_now timestamptz, p_lease interval
) returns table (
  call_id uuid, recording_sid text, channels integer, duration_seconds integer,
  status text, attempts integer, call_started_at timestamptz,
  call_direction text, call_duration_seconds integer
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  taken phi.twilio_recording_fetches%rowtype;
begin
  -- The owner saved the settings since Twilio rejected the credentials: every
  -- fetch stopped by the rejection is due again (only the deletion, for a
  -- recording already stored).
  update phi.twilio_recording_fetches f
  set status = case
      when exists (
        select 1 from phi.call_media m
        where m.call_id = f.call_id and m.kind = 'recording'
      ) then 'delete_pending'
      else 'pending' end,
    next_attempt_at = p_now,
    updated_at = now()
  where f.practice_id = perpetua.practice_id()
    and f.status = 'credentials_rejected'
    and exists (
      select 1 from app.call_settings s
      where s.practice_id = f.practice_id and s.updated_at > f.updated_at
    );

  update phi.twilio_recording_fetches f
  set next_attempt_at = p_now + p_lease, updated_at = now()
  where f.id = p_id
    and f.practice_id = perpetua.practice_id()
    and f.status in ('pending', 'delete_pending')
    and f.next_attempt_at <= p_now
  returning f.* into taken;
  if taken.id is null then
    return;
  end if;
  return query
    select taken.call_id, taken.recording_sid, taken.channels,
      taken.duration_seconds, taken.status, taken.attempts, c.started_at,
      c.direction, c.duration_seconds
    from (select 1) one
    left join phi.calls c
      on c.id = taken.call_id and c.practice_id = taken.practice_id;
end
$$;

-- Record what became of a fetch and, when a request was made to Twilio, the
-- audit event for it in the same transaction: `api_call` for downloading the
-- recording, `delete` for deleting it at Twilio, on resource twilio_recording.
create function phi_api.settle_twilio_fetch(
  p_id uuid, p_status text, p_error text, p_next timestamptz,
  p_attempted boolean, p_request text, p_outcome text, p_now timestamptz
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  call uuid;
  patient uuid;
begin
  if p_request is not null and p_request not in ('api_call', 'delete') then
    raise exception 'unknown request to Twilio' using errcode = 'PV002';
  end if;
  update phi.twilio_recording_fetches f
  set status = p_status,
    last_error = p_error,
    next_attempt_at = coalesce(p_next, f.next_attempt_at),
    attempts = f.attempts + case when p_attempted then 1 else 0 end,
    deleted_at_twilio = case
      when p_request = 'delete' and p_outcome in ('success', 'not_found')
      then p_now else f.deleted_at_twilio end,
    updated_at = now()
  where f.id = p_id and f.practice_id = perpetua.practice_id()
  returning f.call_id into call;
  if call is null or p_request is null then
    return;
  end if;
  select c.patient_id into patient from phi.calls c where c.id = call;
  perform audit.record(p_request, 'twilio_recording', array[call], array[patient],
    p_outcome, case when p_outcome = 'success' then 1 else 0 end);
end
$$;

-- The call's stored transcript (system only), read by the fetcher for the word
-- timings of the card numbers it replaced: those seconds are silenced in a
-- recording fetched after the transcript, as in an upload carrying both. The
-- read is recorded as a view of the transcript.
create function phi_api.call_transcript_for_silencing(p_call uuid)
returns table (object_id uuid, redactions integer)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  media phi.call_media%rowtype;
  patient uuid;
begin
  if perpetua.actor_kind() <> 'system' then
    perform phi_api.deny('view', 'call_transcript', array[p_call]);
    return;
  end if;
  select m.* into media from phi.call_media m
  where m.call_id = p_call and m.kind = 'transcript' and m.deleted_at is null
    and m.practice_id = perpetua.practice_id();
  if media.id is null then
    return;
  end if;
  select c.patient_id into patient from phi.calls c where c.id = p_call;
  perform audit.record('view', 'call_transcript', array[p_call], array[patient],
    'success', 1);
  return query select media.object_id, media.redactions;
end
$$;

-- Whether Twilio refused the practice's stored credentials since the owner last
-- saved them (owners and the system; others see false).
create function phi_api.twilio_credentials_rejected() returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select exists (
    select 1 from phi.twilio_recording_fetches f
    left join app.call_settings s on s.practice_id = f.practice_id
    where f.practice_id = perpetua.practice_id()
      and f.status = 'credentials_rejected'
      and (s.updated_at is null or f.updated_at >= s.updated_at)
  )
$$;

revoke all on function phi_api.queue_twilio_recording(
  uuid, text, integer, integer, timestamptz)
  from public;
revoke all on function phi_api.twilio_fetches_due(timestamptz, uuid, integer)
  from public;
revoke all on function phi_api.take_twilio_fetch(uuid, timestamptz, interval)
  from public;
revoke all on function phi_api.settle_twilio_fetch(
  uuid, text, text, timestamptz, boolean, text, text, timestamptz) from public;
revoke all on function phi_api.twilio_credentials_rejected() from public;
revoke all on function phi_api.call_transcript_for_silencing(uuid) from public;

grant execute on function phi_api.queue_twilio_recording(
  uuid, text, integer, integer, timestamptz) to perpetua_service;
grant execute on function phi_api.twilio_fetches_due(timestamptz, uuid, integer)
  to perpetua_service;
grant execute on function phi_api.take_twilio_fetch(uuid, timestamptz, interval)
  to perpetua_service;
grant execute on function phi_api.settle_twilio_fetch(
  uuid, text, text, timestamptz, boolean, text, text, timestamptz)
  to perpetua_service;
grant execute on function phi_api.twilio_credentials_rejected()
  to perpetua_service;
grant execute on function phi_api.call_transcript_for_silencing(uuid)
  to perpetua_service;
