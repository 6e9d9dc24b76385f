-- Business Associate Agreement e-signatures. Each released version of the
-- agreement's text is recorded with its SHA-256; a signature names one of those
-- pairs, so nobody can sign a text the repository never released. A signature is
-- made only by a signed-in owner of the practice, and it creates the execution
-- row that perpetua.baa_in_force reads: the PHI gate opens at the moment of
-- signing and at no other. Signatures are never updated or deleted.

create table app.baa_versions (
  version text primary key check (version ~ '^[0-9]{4}-[0-9]{2}$'),
  document_sha256 text not null unique check (document_sha256 ~ '^[0-9a-f]{64}$'),
  released_at timestamptz not null,
  -- Signatures name the pair, so a digest cannot be matched to another version.
  unique (version, document_sha256)
);
insert into app.baa_versions (version, document_sha256, released_at) values (
  '2026-12',
  '3b4ef50a1e6212f5e59d004803f83bc85420a0f17c37cc50a32af5f2ace6de83',
  '2026-12-01T00:00:00Z'
);

-- Released texts are public reference data: anyone may read the list, nobody
-- but a migration adds to it.
alter table app.baa_versions enable row level security;
alter table app.baa_versions force row level security;
create policy baa_versions_readable on app.baa_versions for select using (true);
grant select on app.baa_versions to perpetua_service;

create table app.baa_signatures (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  execution_id uuid not null unique references app.baa_executions (id),
  version text not null,
  document_sha256 text not null,
  signer_user_id uuid not null references app.users (id),
  signer_name text not null check (length(btrim(signer_name)) between 2 and 200),
  signer_title text not null check (length(btrim(signer_title)) between 2 and 200),
  signer_ip inet,
  signer_user_agent text check (length(signer_user_agent) <= 400),
  consented boolean not null check (consented),
  signed_at timestamptz not null,
  countersigner text not null check (length(countersigner) between 2 and 200),
  countersigned_at timestamptz not null check (countersigned_at >= signed_at),
  -- The executed PDF lives encrypted in the document store, outside the
  -- database; the row keeps its object id, its wrapped data key and the digest
  -- of the plaintext so a copy can be checked against the record.
  pdf_object_id uuid not null unique,
  pdf_wrapped_key bytea not null,
  pdf_sha256 text not null check (pdf_sha256 ~ '^[0-9a-f]{64}$'),
  foreign key (version, document_sha256)
    references app.baa_versions (version, document_sha256),
  -- One signature per version per practice: signing again changes nothing.
  unique (practice_id, version)
);
create index baa_signatures_practice on app.baa_signatures (practice_id, signed_at);

alter table app.baa_signatures enable row level security;
alter table app.baa_signatures force row level security;
create policy baa_signatures_visible on app.baa_signatures for select
  using (practice_id = (select perpetua.practice_id()));
create policy baa_signatures_owner_signs on app.baa_signatures for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and (select perpetua.practice_role()) = 'owner'
    and signer_user_id = (select perpetua.actor_id())
  );
grant select, insert on app.baa_signatures to perpetua_service;

-- Runs as the table owner so that the service role needs no insert privilege on
-- app.baa_executions: the only way it can open the PHI gate is by a signature.
-- The owner role is under forced RLS too, so baa_record still checks the claims.
create function app.baa_signature_executes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  -- Refuse before touching the gate: the insert policy would refuse later, but
  -- the execution row must never exist, even for a moment, without an owner.
  if perpetua.actor_kind() is distinct from 'user'
     or perpetua.practice_role() is distinct from 'owner'
     or perpetua.practice_id() is distinct from new.practice_id
     or perpetua.actor_id() is distinct from new.signer_user_id then
    raise exception 'only an owner of the practice can sign its BAA'
      using errcode = '42501';
  end if;
  insert into app.baa_executions (practice_id, version, document_sha256, executed_at)
  values (new.practice_id, new.version, new.document_sha256, new.countersigned_at)
  returning id into new.execution_id;
  return new;
end
$$;

create trigger baa_signature_executes before insert on app.baa_signatures
  for each row execute function app.baa_signature_executes();

-- Append-only: a signed agreement is evidence, even for the table's owner.
create function app.baa_signature_immutable() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  raise exception 'a BAA signature cannot be changed or removed'
    using errcode = '42501';
end
$$;

create trigger baa_signature_immutable before update or delete
  on app.baa_signatures
  for each row execute function app.baa_signature_immutable();

revoke all on function app.baa_signature_executes() from public;
revoke all on function app.baa_signature_immutable() from public;
