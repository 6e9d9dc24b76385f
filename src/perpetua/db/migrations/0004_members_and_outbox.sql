-- Members and their roles, invitations, the practice's security settings and the
-- email outbox.
--
-- The rules that protect a practice from its own staff are enforced here, not only
-- in Python: a manager can neither create nor change an owner, and the last owner
-- can be neither demoted nor removed. The outbox holds every email the service
-- sends; a row is the proof that a message was queued, retried and delivered or
-- given up on, so a failure is never silent.

-- A provider membership will point at that provider's schedule; the providers
-- table comes with the PHI records, so this stays a plain column until then.
alter table app.memberships add column if not exists provider_id uuid;
grant update (provider_id) on app.memberships to perpetua_service;

-- Security settings an owner chooses for the whole practice.
alter table app.practices
  add column require_mfa boolean not null default false,
  add column session_idle_minutes integer not null default 15
    check (session_idle_minutes between 1 and 240);
grant update (require_mfa, session_idle_minutes) on app.practices
  to perpetua_service;

create function perpetua.guard_practice_security() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if (new.require_mfa is distinct from old.require_mfa
      or new.session_idle_minutes is distinct from old.session_idle_minutes)
     and coalesce(perpetua.practice_role(), '') <> 'owner' then
    raise exception 'only an owner changes security settings' using errcode = 'PR403';
  end if;
  return new;
end
$$;
create trigger practices_security before update of require_mfa, session_idle_minutes
  on app.practices
  for each row execute function perpetua.guard_practice_security();

-- Managers may add and manage staff, never owners; and a practice always keeps at
-- least one owner. The advisory lock serialises concurrent demotions, so two owners
-- demoting each other at once cannot both succeed.
create function perpetua.guard_membership_change() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
declare
  pid uuid := coalesce(new.practice_id, old.practice_id);
begin
  if perpetua.practice_role() is distinct from 'owner'
     and perpetua.actor_kind() is distinct from 'system' then
    if (tg_op <> 'DELETE' and new.role = 'owner')
       or (tg_op <> 'INSERT' and old.role = 'owner') then
      raise exception 'only an owner creates or changes owners'
        using errcode = 'PR403';
    end if;
  end if;
  if tg_op <> 'INSERT' and old.role = 'owner'
     and (tg_op = 'DELETE' or new.role <> 'owner') then
    perform pg_advisory_xact_lock(hashtext('perpetua.owners:' || pid::text));
    if not exists (
      select 1 from app.memberships m
      where m.practice_id = pid and m.role = 'owner' and m.user_id <> old.user_id
    ) then
      raise exception 'a practice keeps at least one owner' using errcode = 'PR409';
    end if;
  end if;
  return coalesce(new, old);
end
$$;
create trigger memberships_roles before insert or update or delete on app.memberships
  for each row execute function perpetua.guard_membership_change();

-- Invitations: only the SHA-256 of the emailed token is kept. Accepting one
-- happens before the invitee is signed in, so it goes through a SECURITY DEFINER
-- function below.
create table app.invitations (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  email text not null check (length(email) between 3 and 254),
  role text not null
    check (role in ('owner', 'manager', 'biller', 'front_desk', 'provider')),
  provider_id uuid,
  token_hash bytea not null unique check (length(token_hash) = 32),
  invited_by uuid not null references app.users (id),
  created_at timestamptz not null,
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references app.users (id),
  revoked_at timestamptz
);
create index invitations_practice on app.invitations (practice_id);
-- Enabled, not forced: the lookups an invitee makes before signing in run as the
-- owner in the SECURITY DEFINER functions below.
alter table app.invitations enable row level security;

create policy invitations_visible on app.invitations for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy invitations_create on app.invitations for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'user'
    and invited_by = (select perpetua.actor_id())
    and (
      (select perpetua.practice_role()) = 'owner'
      or ((select perpetua.practice_role()) = 'manager' and role <> 'owner')
    )
  );
create policy invitations_revoke on app.invitations for update
  using (
    practice_id = (select perpetua.practice_id())
    and (
      (select perpetua.practice_role()) = 'owner'
      or ((select perpetua.practice_role()) = 'manager' and role <> 'owner')
    )
  );
grant select, insert on app.invitations to perpetua_service;
grant update (revoked_at) on app.invitations to perpetua_service;

create trigger invitations_writable before insert or update on app.invitations
  for each row execute function perpetua.guard_practice_writable();

-- What the invitee sees before accepting: only an invitation that is still open.
create function app.invitation_lookup(p_token_hash bytea, p_now timestamptz)
returns table (
  invitation_id uuid, practice_id uuid, practice_name text, email text, role text,
  has_account boolean
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  inv app.invitations%rowtype;
begin
  select * into inv from app.invitations i
  where i.token_hash = p_token_hash
    and i.accepted_at is null and i.revoked_at is null and i.expires_at > p_now;
  if not found then
    return;
  end if;
  perform set_config(
    'request.jwt.claims',
    jsonb_build_object(
      'actor_kind', 'system', 'sub', '00000000-0000-0000-0000-000000000000',
      'request_id', 'invitation_lookup', 'practice_id', inv.practice_id
    )::text,
    true
  );
  return query
    select inv.id, inv.practice_id, p.name, inv.email, inv.role,
           exists (select 1 from app.users u where lower(u.email) = lower(inv.email))
    from app.practices p where p.id = inv.practice_id;
end
$$;

-- Accept an open invitation for `p_user`, whose email must be the invited one.
-- Single use: the row is locked and marked in the same statement that checks it.
create function app.invitation_accept(
  p_token_hash bytea, p_now timestamptz, p_user uuid
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  inv app.invitations%rowtype;
begin
  select * into inv from app.invitations
  where token_hash = p_token_hash for update;
  if not found or inv.accepted_at is not null or inv.revoked_at is not null
     or inv.expires_at <= p_now then
    raise exception 'invitation is not open' using errcode = 'PR410';
  end if;
  if not exists (
    select 1 from app.users where id = p_user and lower(email) = lower(inv.email)
  ) then
    raise exception 'invitation is for another account' using errcode = 'PR410';
  end if;
  update app.invitations set accepted_at = p_now, accepted_by = p_user
    where id = inv.id;

  -- The membership is written as the system acting in that practice, so the
  -- forced policies and triggers on memberships still run.
  perform set_config(
    'request.jwt.claims',
    jsonb_build_object(
      'actor_kind', 'system', 'sub', '00000000-0000-0000-0000-000000000000',
      'request_id', 'invitation_accept', 'practice_id', inv.practice_id
    )::text,
    true
  );
  if exists (
    select 1 from app.memberships
    where practice_id = inv.practice_id and user_id = p_user
  ) then
    raise exception 'already a member' using errcode = 'PR409';
  end if;
  insert into app.memberships (practice_id, user_id, role, provider_id, created_at)
  values (inv.practice_id, p_user, inv.role, inv.provider_id, p_now);
  return inv.practice_id;
end
$$;

create policy memberships_system_insert on app.memberships for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );

-- The outbox. Bodies may carry one-time links, so a body is erased as soon as the
-- message is delivered; addresses stay for the delivery record.
create table app.mail_outbox (
  id uuid primary key,
  practice_id uuid references app.practices (id),
  kind text not null check (kind ~ '^[a-z_]{1,40}$'),
  to_address text not null check (length(to_address) between 3 and 254),
  subject text not null check (length(subject) between 1 and 200),
  body_text text,
  status text not null default 'pending'
    check (status in ('pending', 'sent', 'failed')),
  attempts integer not null default 0,
  last_error text,
  created_at timestamptz not null,
  next_attempt_at timestamptz not null,
  sent_at timestamptz
);
create index mail_outbox_due on app.mail_outbox (next_attempt_at)
  where status = 'pending';
alter table app.mail_outbox enable row level security;
alter table app.mail_outbox force row level security;

create policy mail_outbox_enqueue on app.mail_outbox for insert
  with check (
    (select perpetua.actor_kind()) is not null
    and status = 'pending' and attempts = 0
    and (practice_id is null or practice_id = (select perpetua.practice_id()))
  );
-- The delivery job works as the system; owners and managers see their practice's
-- messages so that a failed invitation is visible where it was sent from.
create policy mail_outbox_visible on app.mail_outbox for select
  using (
    (select perpetua.actor_kind()) = 'system'
    or (
      practice_id = (select perpetua.practice_id())
      and (select perpetua.practice_role()) in ('owner', 'manager')
    )
  );
create policy mail_outbox_deliver on app.mail_outbox for update
  using ((select perpetua.actor_kind()) = 'system');
grant select, insert on app.mail_outbox to perpetua_service;
grant update (status, attempts, last_error, next_attempt_at, sent_at, body_text)
  on app.mail_outbox to perpetua_service;

-- Staff accounts are made by operators; only the system may insert one.
create policy users_create_staff on app.users for insert
  with check ((select perpetua.actor_kind()) = 'system' and kind = 'staff');

revoke all on function perpetua.guard_practice_security() from public;
revoke all on function perpetua.guard_membership_change() from public;
revoke all on function app.invitation_lookup(bytea, timestamptz) from public;
revoke all on function app.invitation_accept(bytea, timestamptz, uuid) from public;
grant execute on function perpetua.guard_practice_security() to perpetua_service;
grant execute on function perpetua.guard_membership_change() to perpetua_service;
grant execute on function app.invitation_lookup(bytea, timestamptz)
  to perpetua_service;
grant execute on function app.invitation_accept(bytea, timestamptz, uuid)
  to perpetua_service;
