-- Call recordings and transcripts: which stored objects belong to which call, the
-- practice's retention choices, and legal holds.
--
-- The bytes themselves never enter PostgreSQL: they live encrypted in the blob
-- store (`perpetua.blobs`, one data key per object). These tables hold only the
-- link from a call to its object ids, the counts of what redaction removed, and
-- when retention deleted an object. The service role reads and writes them only
-- through the phi_api functions below; a read of a transcript or a recording
-- writes its audit event (`view` / `playback`) in the same transaction, before
-- the object id that opens the bytes is returned.

-- Retention and telephony settings ----------------------------------------------

-- One row per practice; a practice without a row keeps both kinds 365 days.
-- 0 days means "never store": ingestion writes no bytes at all.
create table app.call_settings (
  practice_id uuid primary key references app.practices (id),
  recording_retention_days integer not null default 365
    check (recording_retention_days between 0 and 3650),
  transcript_retention_days integer not null default 365
    check (transcript_retention_days between 0 and 3650),
  twilio_account_sid text check (twilio_account_sid ~ '^AC[0-9a-fA-F]{32}$'),
  -- Sealed by the service under the practice's field key (AES-256-GCM, bound to
  -- this table, column and practice); never stored in clear.
  twilio_auth_token_ct bytea,
  updated_at timestamptz not null default now(),
  updated_by uuid
);
alter table app.call_settings enable row level security;
alter table app.call_settings force row level security;

-- Every member (and the system, for ingestion and the sweep) may read the
-- practice's choices; only an owner, signed in as a person, may change them.
create policy call_settings_visible on app.call_settings for select
  using (practice_id = (select perpetua.practice_id()));
create policy call_settings_owner_insert on app.call_settings for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
    and (select perpetua.actor_kind()) = 'user'
  );
create policy call_settings_owner_update on app.call_settings for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
    and (select perpetua.actor_kind()) = 'user'
  );
grant select, insert, update on app.call_settings to perpetua_service;

create trigger call_settings_writable before insert or update on app.call_settings
  for each row execute function perpetua.guard_practice_writable();

-- A change of retention is a security-relevant fact: recorded as an audit event.
create function audit.record_call_settings() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  perform audit.record(
    case tg_op when 'INSERT' then 'create' else 'update' end,
    'call_settings', array[new.practice_id], '{}', 'success', 1
  );
  return null;
end
$$;
revoke all on function audit.record_call_settings() from public;
create trigger call_settings_audit after insert or update on app.call_settings
  for each row execute function audit.record_call_settings();

-- Stored objects of a call ------------------------------------------------------

create table phi.call_media (
  id uuid primary key default gen_random_uuid(),
  practice_id uuid not null,
  call_id uuid not null,
  kind text not null check (kind in ('recording', 'transcript')),
  -- The blob store's object id; the object's key, size and period live there.
  object_id uuid not null unique,
  content_type text not null check (content_type in (
    'audio/wav', 'audio/mpeg', 'audio/ogg', 'application/json'
  )),
  -- How many card numbers / security codes redaction replaced, and whether the
  -- recording's matching audio was silenced before it was stored.
  redactions integer not null default 0 check (redactions >= 0),
  silenced boolean not null default false,
  stored_at timestamptz not null,
  deleted_at timestamptz,
  certificate_id uuid,
  unique (practice_id, call_id, kind),
  foreign key (practice_id, call_id) references phi.calls (practice_id, id)
);
create index call_media_live on phi.call_media (practice_id, kind)
  where deleted_at is null;

-- A call under legal hold keeps its recording and transcript whatever the
-- retention choice; a hold is released, never deleted, so its history stays.
create table phi.call_holds (
  id uuid primary key default gen_random_uuid(),
  practice_id uuid not null,
  call_id uuid not null,
  -- Free text that may name the matter: sealed by the service like other PHI.
  reason_ct bytea not null,
  placed_by uuid not null,
  placed_at timestamptz not null default now(),
  released_by uuid,
  released_at timestamptz,
  foreign key (practice_id, call_id) references phi.calls (practice_id, id)
);
create unique index call_holds_active on phi.call_holds (call_id)
  where released_at is null;

alter table phi.call_media enable row level security;
alter table phi.call_media force row level security;
alter table phi.call_holds enable row level security;
alter table phi.call_holds force row level security;

-- New objects need an executed BAA and a writable practice; marking an object
-- deleted is retention doing its duty and runs even for a read-only practice.
create function perpetua.guard_call_media_write() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if tg_op = 'INSERT' then
    if not perpetua.baa_in_force(new.practice_id) then
      raise exception 'no PHI before a signed Business Associate Agreement'
        using errcode = 'PB001';
    end if;
    perform perpetua.assert_practice_writable(new.practice_id);
  end if;
  return new;
end
$$;
create trigger call_media_guard before insert or update on phi.call_media
  for each row execute function perpetua.guard_call_media_write();
create trigger call_holds_guard before insert or update or delete on phi.call_holds
  for each row execute function perpetua.guard_phi_write();

-- Who sees the rows: whoever may view calls (the join with phi.calls narrows a
-- provider to their own patients' calls), and the system for ingestion and the
-- retention sweep. The sweep finds practices before it acts in one, so the system
-- without a practice may list rows too; the service role can reach these tables
-- only through the functions below, which return ids, never content.
create policy call_media_read on phi.call_media for select
  using (
    (
      practice_id = (select perpetua.practice_id())
      and (
        (select perpetua.permits('calls', 'view')) is not null
        or (select perpetua.actor_kind()) = 'system'
      )
    )
    or (
      (select perpetua.actor_kind()) = 'system'
      and (select perpetua.practice_id()) is null
    )
  );
-- Objects are attached by telephony and agents, never invented by people.
create policy call_media_attach on phi.call_media for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) in ('agent', 'system')
  );
create policy call_media_retire on phi.call_media for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );

create policy call_holds_read on phi.call_holds for select
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.permits('calls', 'view')) is not null
      or (select perpetua.actor_kind()) = 'system'
    )
  );
create policy call_holds_place on phi.call_holds for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
    and (select perpetua.actor_kind()) = 'user'
    and placed_by = (select perpetua.actor_id())
  );
create policy call_holds_release on phi.call_holds for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
    and (select perpetua.actor_kind()) = 'user'
  );

-- Telephony links a call to a patient by the caller's number (blind index): the
-- system may look for that one match, and nothing else reads patients as the
-- system (every phi_api patient read checks the role's permission first).
-- The system reads the calls it records (to attach their objects and to sweep
-- them); every phi_api read of calls checks the role's permission first.
create policy calls_system_read on phi.calls for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );

create policy patients_match_caller on phi.patients for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );

create function audit.record_call_media() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  patient uuid;
begin
  select c.patient_id into patient from phi.calls c where c.id = new.call_id;
  if tg_op = 'INSERT' then
    perform audit.record('create', 'call_' || new.kind, array[new.call_id],
      array[patient], 'success', 1);
  elsif new.deleted_at is not null and old.deleted_at is null then
    perform audit.record('delete', 'call_' || new.kind, array[new.call_id],
      array[patient], 'success', 1);
  end if;
  return null;
end
$$;
revoke all on function audit.record_call_media() from public;
create trigger call_media_audit after insert or update on phi.call_media
  for each row execute function audit.record_call_media();

create function audit.record_call_hold() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  patient uuid;
begin
  select c.patient_id into patient from phi.calls c where c.id = new.call_id;
  perform audit.record(
    case tg_op when 'INSERT' then 'create' else 'update' end,
    'call_legal_hold', array[new.call_id], array[patient], 'success', 1
  );
  return null;
end
$$;
revoke all on function audit.record_call_hold() from public;
create trigger call_holds_audit after insert or update on phi.call_holds
  for each row execute function audit.record_call_hold();

-- Ingestion ---------------------------------------------------------------------

-- Record a call from telephony, linked to the one patient whose phone matches the
-- caller's blind index (none when zero or several match). A repeated delivery of
-- the same call (webhooks are retried) changes nothing. Returns the patient linked
-- and whether this delivery created the call.
create function phi_api.ingest_call(
  p_id uuid, p_direction text, p_caller bytea, p_caller_bidx bytea,
  p_started timestamptz, p_duration integer
) returns table (patient_id uuid, created boolean)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  matches uuid[];
  linked uuid;
  made integer;
begin
  if p_caller_bidx is not null then
    select coalesce(array_agg(p.id), '{}') into matches
    from (
      select p.id from phi.patients p
      where p.practice_id = perpetua.practice_id() and p.phone_bidx = p_caller_bidx
      limit 2
    ) p;
    perform audit.record('search', 'patient', matches, matches, 'success',
      cardinality(matches));
    if cardinality(matches) = 1 then
      linked := matches[1];
    end if;
  end if;
  insert into phi.calls (
    id, practice_id, direction, caller_number_ct, caller_number_bidx, started_at,
    duration_seconds, patient_id
  ) values (
    p_id, perpetua.practice_id(), p_direction, p_caller, p_caller_bidx, p_started,
    p_duration, linked
  )
  on conflict (id) do nothing;
  get diagnostics made = row_count;
  if made = 0 then
    -- Already recorded: report the link it has (the system sees its own calls
    -- only through this function).
    select c.patient_id into linked from phi.calls c where c.id = p_id;
  end if;
  return query select linked, made = 1;
end
$$;

-- Whether the call already holds an object of this kind (a retried delivery).
create function phi_api.call_media_exists(p_call uuid, p_kind text)
returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select exists (
    select 1 from phi.call_media m
    where m.call_id = p_call and m.kind = p_kind
      and m.practice_id = perpetua.practice_id()
  )
$$;

create function phi_api.attach_call_media(
  p_call uuid, p_kind text, p_object uuid, p_content_type text,
  p_redactions integer, p_silenced boolean, p_stored_at timestamptz
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into phi.call_media (
    practice_id, call_id, kind, object_id, content_type, redactions, silenced,
    stored_at
  ) values (
    perpetua.practice_id(), p_call, p_kind, p_object, p_content_type, p_redactions,
    p_silenced, p_stored_at
  )
$$;

-- Reading -----------------------------------------------------------------------

-- The calls of a range with what is stored for each: the call list. Recorded as a
-- view of those calls, like phi_api.read_calls.
create function phi_api.list_calls_media(p_from timestamptz, p_to timestamptz)
returns table (
  id uuid, direction text, caller_number_ct bytea, started_at timestamptz,
  duration_seconds integer, patient_id uuid, has_recording boolean,
  has_transcript boolean, on_hold boolean
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  patients uuid[];
begin
  if not phi_api.may_read('calls') then
    perform phi_api.deny('view', 'call', '{}');
    return;
  end if;
  select coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.patient_id), '{}')
    into found_ids, patients
  from (
    select c.id, c.patient_id from phi.calls c
    where c.started_at >= p_from and c.started_at < p_to
    order by c.started_at desc
    limit 500
  ) c;
  perform audit.record('view', 'call', found_ids, patients, 'success',
    cardinality(found_ids));
  return query
    select c.id, c.direction, c.caller_number_ct, c.started_at, c.duration_seconds,
      c.patient_id,
      exists (select 1 from phi.call_media m where m.call_id = c.id
              and m.kind = 'recording' and m.deleted_at is null),
      exists (select 1 from phi.call_media m where m.call_id = c.id
              and m.kind = 'transcript' and m.deleted_at is null),
      exists (select 1 from phi.call_holds h where h.call_id = c.id
              and h.released_at is null)
    from phi.calls c where c.id = any (found_ids)
    order by c.started_at desc;
end
$$;

-- One call with its stored objects and hold, for the call page (a view of the
-- call). One row per stored object, or one row with a null kind when none.
create function phi_api.read_call_media(p_call uuid)
returns table (
  id uuid, direction text, caller_number_ct bytea, started_at timestamptz,
  duration_seconds integer, patient_id uuid, kind text, content_type text,
  redactions integer, silenced boolean, stored_at timestamptz,
  deleted_at timestamptz, certificate_id uuid, hold_placed_at timestamptz,
  hold_reason_ct bytea
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  patient uuid;
  visible boolean;
begin
  if not phi_api.may_read('calls') then
    perform phi_api.deny('view', 'call', array[p_call]);
    return;
  end if;
  select c.patient_id into patient from phi.calls c where c.id = p_call;
  visible := found;
  perform audit.record('view', 'call', array[p_call], array[patient],
    case when visible then 'success' else 'not_found' end,
    case when visible then 1 else 0 end);
  if not visible then
    return;
  end if;
  return query
    select c.id, c.direction, c.caller_number_ct, c.started_at, c.duration_seconds,
      c.patient_id, m.kind, m.content_type, m.redactions, m.silenced, m.stored_at,
      m.deleted_at, m.certificate_id, h.placed_at, h.reason_ct
    from phi.calls c
    left join phi.call_media m on m.call_id = c.id
    left join phi.call_holds h on h.call_id = c.id and h.released_at is null
    where c.id = p_call
    order by m.kind;
end
$$;

-- The door to a transcript's or a recording's bytes: checks the caller may see
-- the call, records `view` (transcript) or `playback` (recording) in this
-- transaction, and only then returns the object id the blob store opens.
create function phi_api.open_call_media(p_call uuid, p_kind text)
returns table (
  object_id uuid, content_type text, deleted_at timestamptz, redactions integer
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  act text := case p_kind when 'recording' then 'playback' else 'view' end;
  rtype text := 'call_' || p_kind;
  patient uuid;
  media phi.call_media%rowtype;
begin
  if p_kind not in ('recording', 'transcript') then
    raise exception 'unknown kind of call media' using errcode = 'PV002';
  end if;
  if not phi_api.may_read('calls') then
    perform phi_api.deny(act, rtype, array[p_call]);
    return;
  end if;
  select m.* into media
  from phi.call_media m join phi.calls c on c.id = m.call_id
  where m.call_id = p_call and m.kind = p_kind;
  select c.patient_id into patient from phi.calls c where c.id = p_call;
  perform audit.record(act, rtype, array[p_call], array[patient],
    case when media.id is null then 'not_found' else 'success' end,
    case when media.id is null then 0 else 1 end);
  if media.id is null then
    return;
  end if;
  return query
    select media.object_id, media.content_type, media.deleted_at, media.redactions;
end
$$;

-- Legal hold --------------------------------------------------------------------

-- Place a hold; returns the ids of the call's live objects (to hold in the blob
-- store too), or NULL when the caller cannot see the call. The policies decide
-- who may place it.
create function phi_api.place_call_hold(p_call uuid, p_reason bytea)
returns uuid[]
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  objects uuid[];
begin
  if not exists (select 1 from phi.calls c where c.id = p_call) then
    perform phi_api.deny('create', 'call_legal_hold', array[p_call]);
    return null;
  end if;
  if not exists (
    select 1 from phi.call_holds h where h.call_id = p_call and h.released_at is null
  ) then
    insert into phi.call_holds (practice_id, call_id, reason_ct, placed_by)
    values (perpetua.practice_id(), p_call, p_reason, perpetua.actor_id());
  end if;
  select coalesce(array_agg(m.object_id), '{}') into objects
  from phi.call_media m where m.call_id = p_call and m.deleted_at is null;
  return objects;
end
$$;

-- Release the call's hold; returns its live objects, or NULL when no hold was
-- open (or the caller cannot see the call).
create function phi_api.release_call_hold(p_call uuid)
returns uuid[]
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  objects uuid[];
begin
  update phi.call_holds set released_at = now(), released_by = perpetua.actor_id()
  where call_id = p_call and released_at is null;
  if not found then
    return null;
  end if;
  select coalesce(array_agg(m.object_id), '{}') into objects
  from phi.call_media m where m.call_id = p_call and m.deleted_at is null;
  return objects;
end
$$;

-- Retention ---------------------------------------------------------------------

-- Practices that ever stored call objects (the sweep's list; system only): their
-- live objects may expire, and their period keys may be due for destruction.
create function phi_api.call_retention_practices() returns setof uuid
language sql stable security definer
set search_path = pg_catalog
as $$
  select distinct m.practice_id from phi.call_media m
  where (select perpetua.actor_kind()) = 'system'
$$;

-- The live objects of calls on hold (system only): the sweep makes sure each is
-- held in the blob store too before any period key is destroyed.
create function phi_api.held_call_objects() returns setof uuid
language sql stable security definer
set search_path = pg_catalog
as $$
  select m.object_id from phi.call_media m
  join phi.call_holds h on h.call_id = m.call_id and h.released_at is null
  where m.practice_id = perpetua.practice_id()
    and (select perpetua.actor_kind()) = 'system'
    and m.deleted_at is null
$$;

-- The claimed practice's objects whose retention ended by p_now and whose call is
-- not on hold. Retention runs from the start of the call.
create function phi_api.call_media_due(p_now timestamptz)
returns table (call_id uuid, kind text, object_id uuid)
language sql stable security definer
set search_path = pg_catalog
as $$
  select m.call_id, m.kind, m.object_id
  from phi.call_media m
  join phi.calls c on c.id = m.call_id
  left join app.call_settings s on s.practice_id = m.practice_id
  where m.practice_id = perpetua.practice_id()
    and (select perpetua.actor_kind()) = 'system'
    and m.deleted_at is null
    and c.started_at + make_interval(days => case m.kind
          when 'recording' then coalesce(s.recording_retention_days, 365)
          else coalesce(s.transcript_retention_days, 365) end) <= p_now
    and not exists (
      select 1 from phi.call_holds h
      where h.call_id = m.call_id and h.released_at is null
    )
  order by c.started_at
$$;

create function phi_api.retire_call_media(
  p_object uuid, p_certificate uuid, p_at timestamptz
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  update phi.call_media set deleted_at = p_at, certificate_id = p_certificate
  where object_id = p_object and deleted_at is null;
  return found;
end
$$;

revoke all on function phi_api.ingest_call(
  uuid, text, bytea, bytea, timestamptz, integer) from public;
revoke all on function phi_api.call_media_exists(uuid, text) from public;
revoke all on function phi_api.attach_call_media(
  uuid, text, uuid, text, integer, boolean, timestamptz) from public;
revoke all on function phi_api.list_calls_media(timestamptz, timestamptz) from public;
revoke all on function phi_api.read_call_media(uuid) from public;
revoke all on function phi_api.open_call_media(uuid, text) from public;
revoke all on function phi_api.place_call_hold(uuid, bytea) from public;
revoke all on function phi_api.release_call_hold(uuid) from public;
revoke all on function phi_api.call_retention_practices() from public;
revoke all on function phi_api.call_media_due(timestamptz) from public;
revoke all on function phi_api.held_call_objects() from public;
revoke all on function phi_api.retire_call_media(uuid, uuid, timestamptz)
  from public;
revoke all on function perpetua.guard_call_media_write() from public;

grant execute on function phi_api.ingest_call(
  uuid, text, bytea, bytea, timestamptz, integer) to perpetua_service;
grant execute on function phi_api.call_media_exists(uuid, text) to perpetua_service;
grant execute on function phi_api.attach_call_media(
  uuid, text, uuid, text, integer, boolean, timestamptz) to perpetua_service;
grant execute on function phi_api.list_calls_media(timestamptz, timestamptz)
  to perpetua_service;
grant execute on function phi_api.read_call_media(uuid) to perpetua_service;
grant execute on function phi_api.open_call_media(uuid, text) to perpetua_service;
grant execute on function phi_api.place_call_hold(uuid, bytea) to perpetua_service;
grant execute on function phi_api.release_call_hold(uuid) to perpetua_service;
grant execute on function phi_api.call_retention_practices() to perpetua_service;
grant execute on function phi_api.call_media_due(timestamptz) to perpetua_service;
grant execute on function phi_api.held_call_objects() to perpetua_service;
grant execute on function phi_api.retire_call_media(uuid, uuid, timestamptz)
  to perpetua_service;
