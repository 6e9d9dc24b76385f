-- Encrypted blobs (recordings, transcripts, documents) and deletion certificates.
--
-- The ciphertext lives in the blob store (a local folder or S3); this table holds
-- what is needed to find and open it: the data key wrapped by a keystore class
-- key, which class key bucket and version wrap it, sizes and a SHA-256 of the
-- stored bytes. The class keys themselves live outside PostgreSQL, so a dump of
-- this table is useless without the keystore, and after a retention period's key
-- is destroyed it is useless for good.
--
-- The service role has no privilege on these tables: it goes through the
-- phi_api functions below, which write the audit event in the same transaction.

create table phi.blob_objects (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  patient_id uuid,
  data_class text not null
    check (data_class in ('recordings', 'transcripts', 'documents')),
  -- The retention period (month of creation); it never changes.
  period text not null check (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
  -- The keystore bucket whose class key wraps the data key: the period itself,
  -- `hold` while under legal hold, or `_` for classes not bucketed by period.
  key_bucket text not null
    check (key_bucket ~ '^([0-9]{4}-(0[1-9]|1[0-2])|hold|_)$'),
  key_version integer not null check (key_version > 0),
  wrapped_data_key bytea,
  size bigint not null check (size >= 0),
  stored_size bigint not null check (stored_size > 0),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  legal_hold boolean not null default false,
  created_at timestamptz not null,
  shredded_at timestamptz,
  certificate_id uuid,
  check ((shredded_at is null) = (wrapped_data_key is not null)),
  unique (practice_id, id),
  foreign key (practice_id, patient_id) references phi.patients (practice_id, id)
);
create index blob_objects_bucket
  on phi.blob_objects (practice_id, data_class, key_bucket, key_version)
  where shredded_at is null;
create index blob_objects_patient on phi.blob_objects (practice_id, patient_id);

-- Evidence of every destruction: a class key bucket at the end of its retention
-- period, or one object deleted alone. Holds identifiers only, never PHI.
create table phi.deletion_certificates (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  data_class text not null,
  period text,
  key_versions integer[] not null default '{}',
  object_ids uuid[] not null default '{}',
  object_count integer not null check (object_count >= 0),
  destroyed_at timestamptz not null,
  reason text not null check (length(btrim(reason)) between 1 and 500),
  actor text not null check (length(actor) between 1 and 200),
  kek_id text not null,
  method text not null,
  recorded_at timestamptz not null default now()
);
create index deletion_certificates_practice
  on phi.deletion_certificates (practice_id, destroyed_at);

alter table phi.blob_objects enable row level security;
alter table phi.blob_objects force row level security;
alter table phi.deletion_certificates enable row level security;
alter table phi.deletion_certificates force row level security;

-- New objects need a signed BAA and a writable practice; shredding and rewrapping
-- must still work on a read-only practice, so updates are not guarded.
create trigger blob_objects_guard before insert on phi.blob_objects
  for each row execute function perpetua.guard_phi_write();

-- Which permission category a data class falls under.
create function perpetua.blob_category(p_class text) returns text
language sql immutable
set search_path = pg_catalog
as $$
  select case p_class when 'documents' then 'clinical' else 'calls' end
$$;

create policy blob_objects_read on phi.blob_objects for select
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) = 'system'
      or perpetua.may_touch(perpetua.blob_category(data_class), 'view', patient_id)
    )
  );
-- Blobs are created by agents, telephony webhooks and jobs, or by members whose
-- role may create records of the category.
create policy blob_objects_create on phi.blob_objects for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) in ('agent', 'system')
      or perpetua.permits(perpetua.blob_category(data_class), 'create') = 'all'
    )
  );
-- Updates (rewrap, legal hold, shredding) by the system or the practice owner;
-- the phi_api functions narrow each operation further.
create policy blob_objects_update on phi.blob_objects for update
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) = 'system'
      or (select perpetua.practice_role()) = 'owner'
    )
  );

create policy certificates_read on phi.deletion_certificates for select
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) = 'system'
      or (select perpetua.practice_role()) = 'owner'
    )
  );
create policy certificates_record on phi.deletion_certificates for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.actor_kind()) = 'system'
      or (select perpetua.practice_role()) = 'owner'
    )
  );

create function phi_api.blob_resource(p_class text) returns text
language sql immutable
set search_path = pg_catalog
as $$
  select case p_class
    when 'recordings' then 'recording'
    when 'transcripts' then 'transcript'
    when 'documents' then 'document'
    else 'blob'
  end
$$;

create function phi_api.require_system() returns void
language plpgsql stable
set search_path = pg_catalog
as $$
begin
  if perpetua.actor_kind() is distinct from 'system' then
    raise exception 'only the system may do this' using errcode = 'PR403';
  end if;
end
$$;

create function phi_api.record_blob(
  p_id uuid, p_patient uuid, p_class text, p_period text, p_bucket text,
  p_version integer, p_wrapped bytea, p_size bigint, p_stored_size bigint,
  p_sha256 text, p_created_at timestamptz
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  insert into phi.blob_objects (
    id, practice_id, patient_id, data_class, period, key_bucket, key_version,
    wrapped_data_key, size, stored_size, sha256, created_at
  ) values (
    p_id, perpetua.practice_id(), p_patient, p_class, p_period, p_bucket,
    p_version, p_wrapped, p_size, p_stored_size, p_sha256, p_created_at
  );
  perform audit.record(
    'create', phi_api.blob_resource(p_class), array[p_id],
    case when p_patient is null then '{}'::uuid[] else array[p_patient] end,
    'success', 1
  );
end
$$;

-- One object's metadata and wrapped data key; audited before it is returned.
-- `denied` when the caller may read neither category, `not_found` when no
-- visible row has this id (hidden by policy or absent: not told apart).
-- The action `read` (about to decrypt) is recorded as `playback` for a
-- recording and as `view` otherwise.
create function phi_api.read_blob(p_id uuid, p_action text)
returns table (
  id uuid, patient_id uuid, data_class text, period text, key_bucket text,
  key_version integer, wrapped_data_key bytea, size bigint, stored_size bigint,
  sha256 text, legal_hold boolean, created_at timestamptz,
  shredded_at timestamptz, certificate_id uuid
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  r phi.blob_objects;
begin
  if perpetua.actor_kind() is distinct from 'system'
     and not phi_api.may_read('calls') and not phi_api.may_read('clinical') then
    perform phi_api.deny(
      case when p_action = 'read' then 'view' else p_action end,
      'blob', array[p_id]
    );
    return;
  end if;
  select * into r from phi.blob_objects b where b.id = p_id;
  if not found then
    perform audit.record(
      case when p_action = 'read' then 'view' else p_action end,
      'blob', array[p_id], '{}', 'not_found', 0
    );
    return;
  end if;
  perform audit.record(
    case
      when p_action <> 'read' then p_action
      when r.data_class = 'recordings' then 'playback'
      else 'view'
    end,
    phi_api.blob_resource(r.data_class), array[r.id],
    case when r.patient_id is null then '{}'::uuid[] else array[r.patient_id] end,
    'success', 1
  );
  return query select r.id, r.patient_id, r.data_class, r.period, r.key_bucket,
    r.key_version, r.wrapped_data_key, r.size, r.stored_size, r.sha256,
    r.legal_hold, r.created_at, r.shredded_at, r.certificate_id;
end
$$;

-- Live objects of one key bucket whose data keys need work: those below a key
-- version (rewrap) or those under legal hold (moving to the hold bucket).
-- Wrapped keys are not PHI; the list is for the system's maintenance only.
create function phi_api.blob_keys(
  p_class text, p_bucket text, p_below_version integer, p_held_only boolean,
  p_limit integer
) returns table (id uuid, key_version integer, wrapped_data_key bytea)
language plpgsql stable security definer
set search_path = pg_catalog
as $$
begin
  perform phi_api.require_system();
  return query
    select b.id, b.key_version, b.wrapped_data_key from phi.blob_objects b
    where b.data_class = p_class and b.key_bucket = p_bucket
      and b.shredded_at is null
      and (p_below_version is null or b.key_version < p_below_version)
      and (not p_held_only or b.legal_hold)
    order by b.id
    limit p_limit;
end
$$;

-- How many live objects of a bucket are still below a key version: the total
-- of a rewrap's progress bar.
create function phi_api.count_blob_keys(
  p_class text, p_bucket text, p_below_version integer
) returns bigint
language plpgsql stable security definer
set search_path = pg_catalog
as $$
declare
  n bigint;
begin
  perform phi_api.require_system();
  select count(*) into n from phi.blob_objects b
  where b.data_class = p_class and b.key_bucket = p_bucket
    and b.shredded_at is null and b.key_version < p_below_version;
  return n;
end
$$;

-- Replace a data key's wrapping, only if nobody changed it meanwhile.
create function phi_api.rewrap_blob(
  p_id uuid, p_from_bucket text, p_from_version integer, p_bucket text,
  p_version integer, p_wrapped bytea
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  perform phi_api.require_system();
  update phi.blob_objects b set
    key_bucket = p_bucket, key_version = p_version, wrapped_data_key = p_wrapped
  where b.id = p_id and b.key_bucket = p_from_bucket
    and b.key_version = p_from_version and b.shredded_at is null;
  return found;
end
$$;

-- Place or lift a legal hold (the practice owner or the system); the caller
-- rewraps the data key in the same call (into the `hold` bucket, or back to the
-- period bucket), compare-and-set.
create function phi_api.set_blob_legal_hold(
  p_id uuid, p_held boolean, p_from_bucket text, p_from_version integer,
  p_bucket text, p_version integer, p_wrapped bytea
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  r phi.blob_objects;
begin
  if perpetua.actor_kind() is distinct from 'system'
     and perpetua.practice_role() is distinct from 'owner' then
    perform phi_api.deny('update', 'blob', array[p_id]);
    return false;
  end if;
  update phi.blob_objects b set
    legal_hold = p_held, key_bucket = p_bucket, key_version = p_version,
    wrapped_data_key = p_wrapped
  where b.id = p_id and b.key_bucket = p_from_bucket
    and b.key_version = p_from_version and b.shredded_at is null
  returning * into r;
  if not found then
    return false;
  end if;
  perform audit.record(
    'update', phi_api.blob_resource(r.data_class), array[r.id],
    case when r.patient_id is null then '{}'::uuid[] else array[r.patient_id] end,
    'success', 1
  );
  return true;
end
$$;

-- Crypto-shred the rows of a destroyed key bucket: their wrapped data keys are
-- dropped and the certificate named. Returns the ids, whose ciphertext the
-- caller then deletes from the blob store.
create function phi_api.shred_blob_bucket(
  p_class text, p_bucket text, p_certificate uuid
) returns table (id uuid)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  perform phi_api.require_system();
  return query
    update phi.blob_objects b set
      wrapped_data_key = null, shredded_at = now(), certificate_id = p_certificate
    where b.data_class = p_class and b.key_bucket = p_bucket
      and b.shredded_at is null
    returning b.id;
end
$$;

-- Delete one object alone: allowed to the system and to members whose role may
-- delete records of its category; never while it is under legal hold.
create function phi_api.delete_blob(p_id uuid, p_certificate uuid)
returns table (data_class text, key_bucket text, period text)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  r phi.blob_objects;
begin
  select * into r from phi.blob_objects b
  where b.id = p_id and b.shredded_at is null and not b.legal_hold;
  if not found then
    return;
  end if;
  if perpetua.actor_kind() is distinct from 'system'
     and perpetua.permits(perpetua.blob_category(r.data_class), 'delete')
       is distinct from 'all' then
    perform phi_api.deny('delete', phi_api.blob_resource(r.data_class), array[p_id]);
    return;
  end if;
  update phi.blob_objects b set
    wrapped_data_key = null, shredded_at = now(), certificate_id = p_certificate
  where b.id = p_id;
  perform audit.record(
    'delete', phi_api.blob_resource(r.data_class), array[r.id],
    case when r.patient_id is null then '{}'::uuid[] else array[r.patient_id] end,
    'success', 1
  );
  return query select r.data_class, r.key_bucket, r.period;
end
$$;

create function phi_api.record_deletion_certificate(
  p_id uuid, p_class text, p_period text, p_key_versions integer[],
  p_object_ids uuid[], p_object_count integer, p_destroyed_at timestamptz,
  p_reason text, p_actor text, p_kek_id text, p_method text
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into phi.deletion_certificates (
    id, practice_id, data_class, period, key_versions, object_ids, object_count,
    destroyed_at, reason, actor, kek_id, method
  ) values (
    p_id, perpetua.practice_id(), p_class, p_period, p_key_versions,
    p_object_ids, p_object_count, p_destroyed_at, p_reason, p_actor, p_kek_id,
    p_method
  )
  on conflict (id) do nothing
$$;

create function phi_api.list_deletion_certificates()
returns table (
  id uuid, data_class text, period text, key_versions integer[],
  object_ids uuid[], object_count integer, destroyed_at timestamptz,
  reason text, actor text, kek_id text, method text
)
language sql stable security definer
set search_path = pg_catalog
as $$
  select c.id, c.data_class, c.period, c.key_versions, c.object_ids,
         c.object_count, c.destroyed_at, c.reason, c.actor, c.kek_id, c.method
  from phi.deletion_certificates c
  order by c.destroyed_at desc, c.id
$$;

-- Functions are executable by PUBLIC by default: take that away from each one
-- created here, then grant the service role what it calls.
revoke all on function
  perpetua.blob_category(text),
  phi_api.blob_resource(text),
  phi_api.require_system(),
  phi_api.record_blob(
    uuid, uuid, text, text, text, integer, bytea, bigint, bigint, text,
    timestamptz
  ),
  phi_api.read_blob(uuid, text),
  phi_api.blob_keys(text, text, integer, boolean, integer),
  phi_api.count_blob_keys(text, text, integer),
  phi_api.rewrap_blob(uuid, text, integer, text, integer, bytea),
  phi_api.set_blob_legal_hold(uuid, boolean, text, integer, text, integer, bytea),
  phi_api.shred_blob_bucket(text, text, uuid),
  phi_api.delete_blob(uuid, uuid),
  phi_api.record_deletion_certificate(
    uuid, text, text, integer[], uuid[], integer, timestamptz, text, text, text,
    text
  ),
  phi_api.list_deletion_certificates()
from public;
grant execute on function perpetua.blob_category(text) to perpetua_service;
grant execute on function
  phi_api.record_blob(
    uuid, uuid, text, text, text, integer, bytea, bigint, bigint, text,
    timestamptz
  ),
  phi_api.read_blob(uuid, text),
  phi_api.blob_keys(text, text, integer, boolean, integer),
  phi_api.count_blob_keys(text, text, integer),
  phi_api.rewrap_blob(uuid, text, integer, text, integer, bytea),
  phi_api.set_blob_legal_hold(uuid, boolean, text, integer, text, integer, bytea),
  phi_api.shred_blob_bucket(text, text, uuid),
  phi_api.delete_blob(uuid, uuid),
  phi_api.record_deletion_certificate(
    uuid, text, text, integer[], uuid[], integer, timestamptz, text, text, text,
    text
  ),
  phi_api.list_deletion_certificates()
to perpetua_service;
