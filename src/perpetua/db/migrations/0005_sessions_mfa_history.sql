-- Sessions that know how far their holder has proven themself, second factors,
-- sign-in throttling, password resets and the security history.
--
-- A session is in one of three states: `mfa_pending` after a right password when a
-- second factor is enrolled, `mfa_enrolment` when a second factor is required but
-- none is enrolled yet, and `full`. Only `full` reaches the practice; the other two
-- reach only the pages that complete them. Whether enrolment is required is decided
-- again at every resolution, so turning on "require MFA" restricts sessions that
-- are already open.

alter table app.sessions
  add column id uuid not null default gen_random_uuid() unique,
  add column state text not null default 'full'
    check (state in ('full', 'mfa_pending', 'mfa_enrolment')),
  add column authenticated_at timestamptz,
  add column mfa_at timestamptz,
  add column challenge bytea,
  add column challenge_purpose text,
  add column challenge_expires_at timestamptz;

-- An opaque handle that security keys store instead of anything that names the user.
alter table app.users
  add column webauthn_handle bytea not null default uuid_send(gen_random_uuid());
create unique index users_webauthn_handle on app.users (webauthn_handle);

-- Second factors. Each row is visible to the service only under its own user's
-- claims; RLS is not forced, so the SECURITY DEFINER lookups made before sign-in
-- (does this account have a factor?) can see them.
create table app.totp_factors (
  user_id uuid primary key references app.users (id) on delete cascade,
  -- Sealed by the service (identity/secret_box.py): AES-256-GCM under the key
  -- store's platform scope, bound to this table, column and user.
  secret text not null,
  created_at timestamptz not null,
  confirmed_at timestamptz,
  last_used_step bigint
);
create table app.webauthn_credentials (
  id uuid primary key,
  user_id uuid not null references app.users (id) on delete cascade,
  credential_id bytea not null unique,
  public_key bytea not null,
  sign_count bigint not null default 0,
  transports text[] not null default '{}',
  name text not null check (length(btrim(name)) between 1 and 60),
  created_at timestamptz not null,
  last_used_at timestamptz
);
create index webauthn_credentials_user on app.webauthn_credentials (user_id);
create table app.recovery_codes (
  id uuid primary key,
  user_id uuid not null references app.users (id) on delete cascade,
  code_hash text not null,
  created_at timestamptz not null,
  used_at timestamptz
);
create index recovery_codes_user on app.recovery_codes (user_id);

alter table app.totp_factors enable row level security;
alter table app.webauthn_credentials enable row level security;
alter table app.recovery_codes enable row level security;
create policy totp_own on app.totp_factors for all
  using (user_id = (select perpetua.actor_id()))
  with check (user_id = (select perpetua.actor_id()));
create policy webauthn_own on app.webauthn_credentials for all
  using (user_id = (select perpetua.actor_id()))
  with check (user_id = (select perpetua.actor_id()));
create policy recovery_own on app.recovery_codes for all
  using (user_id = (select perpetua.actor_id()))
  with check (user_id = (select perpetua.actor_id()));
grant select, insert, delete on app.totp_factors to perpetua_service;
grant update (secret, created_at, confirmed_at, last_used_step)
  on app.totp_factors to perpetua_service;
grant select, insert, delete on app.webauthn_credentials to perpetua_service;
grant update (sign_count, last_used_at, name)
  on app.webauthn_credentials to perpetua_service;
grant select, insert, delete on app.recovery_codes to perpetua_service;
grant update (used_at) on app.recovery_codes to perpetua_service;

create function app.has_second_factor(p_user uuid) returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select exists (
    select 1 from app.totp_factors
    where user_id = p_user and confirmed_at is not null
  ) or exists (select 1 from app.webauthn_credentials where user_id = p_user)
$$;

-- Sessions, replacing the first version: the idle timeout now comes from the
-- practice the session acts in, and a session carries its state.
drop function app.session_create(
  bytea, uuid, uuid, timestamptz, integer, integer, inet, text
);
drop function app.session_resolve(bytea, timestamptz);

create function app.session_create(
  p_token_hash bytea,
  p_user uuid,
  p_practice uuid,
  p_now timestamptz,
  p_state text,
  p_idle_seconds integer,
  p_absolute_seconds integer,
  p_ip inet,
  p_user_agent text,
  p_mfa boolean
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  idle interval := make_interval(secs => p_idle_seconds);
  made uuid;
begin
  if p_practice is not null then
    perform set_config(
      'request.jwt.claims',
      jsonb_build_object(
        'actor_kind', 'user', 'sub', p_user, 'request_id', 'session_create'
      )::text,
      true
    );
    if not exists (
      select 1 from app.memberships
      where user_id = p_user and practice_id = p_practice
    ) then
      raise exception 'not a member of this practice' using errcode = 'PR403';
    end if;
    select make_interval(mins => p.session_idle_minutes) into idle
    from app.practices p where p.id = p_practice;
  end if;
  insert into app.sessions (
    token_hash, user_id, practice_id, created_at, last_seen_at, idle_timeout,
    expires_at, ip, user_agent, state, authenticated_at, mfa_at
  ) values (
    p_token_hash, p_user, p_practice, p_now, p_now, idle,
    p_now + make_interval(secs => p_absolute_seconds),
    p_ip, left(p_user_agent, 400), p_state, p_now,
    case when p_mfa then p_now end
  ) returning id into made;
  return made;
end
$$;

create function app.session_resolve(p_token_hash bytea, p_now timestamptz)
returns table (
  session_id uuid,
  user_id uuid,
  user_kind text,
  practice_id uuid,
  practice_role text,
  state text,
  authenticated_at timestamptz,
  mfa_at timestamptz,
  ended_reason text
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  s app.sessions%rowtype;
  reason text;
  idle interval;
  effective text;
  must_enrol boolean;
begin
  -- No row lock: requests on one session run side by side. A sign-out racing
  -- with a request lets that one request finish, as if it had come first.
  select * into s from app.sessions where token_hash = p_token_hash;
  if not found then
    return;
  end if;
  perform set_config(
    'request.jwt.claims',
    jsonb_strip_nulls(jsonb_build_object(
      'actor_kind', 'user', 'sub', s.user_id, 'request_id', 'session_resolve',
      'practice_id', s.practice_id
    ))::text,
    true
  );

  -- The practice's current setting applies, so shortening it takes effect at once.
  idle := s.idle_timeout;
  if s.practice_id is not null then
    select make_interval(mins => p.session_idle_minutes) into idle
    from app.practices p where p.id = s.practice_id;
  end if;

  if s.ended_at is not null then
    reason := coalesce(s.end_reason, 'signed_out');
  elsif p_now >= s.expires_at then
    reason := 'absolute_timeout';
  elsif p_now - s.last_seen_at >= idle then
    reason := 'idle_timeout';
  end if;
  if reason is not null then
    update app.sessions
      set ended_at = coalesce(ended_at, p_now), end_reason = reason
      where token_hash = p_token_hash;
    return query select s.id, s.user_id, null::text, null::uuid, null::text,
      null::text, null::timestamptz, null::timestamptz, reason;
    return;
  end if;
  -- Activity is written at most every 30 seconds, so most requests leave the
  -- session untouched and commit nothing. An idle session therefore ends up to
  -- 30 seconds early, never late.
  if p_now - s.last_seen_at >= interval '30 seconds' then
    update app.sessions set last_seen_at = p_now
    where token_hash = p_token_hash and last_seen_at < p_now;
  end if;

  select (u.kind = 'staff' or coalesce(p.require_mfa, false))
         and not app.has_second_factor(u.id)
    into must_enrol
  from app.users u left join app.practices p on p.id = s.practice_id
  where u.id = s.user_id;
  effective := case
    when s.state = 'full' and must_enrol then 'mfa_enrolment'
    else s.state
  end;

  return query
    select s.id, u.id, u.kind, s.practice_id, m.role, effective,
           s.authenticated_at, s.mfa_at, null::text
    from app.users u
    left join app.memberships m
      on m.user_id = u.id and m.practice_id = s.practice_id
    where u.id = s.user_id;
end
$$;

-- The holder of a session acts on their own sessions only: every function below
-- finds the user through the caller's own session token.
create function app.session_list(p_token_hash bytea, p_now timestamptz)
returns table (
  id uuid, practice_id uuid, state text, created_at timestamptz,
  last_seen_at timestamptz, ip inet, user_agent text, current boolean
)
language sql stable security definer
set search_path = pg_catalog
as $$
  select s.id, s.practice_id, s.state, s.created_at, s.last_seen_at, s.ip,
         s.user_agent, s.token_hash = p_token_hash
  from app.sessions s
  where s.user_id = (
      select user_id from app.sessions
      where token_hash = p_token_hash and ended_at is null
    )
    and s.ended_at is null and s.expires_at > p_now
    and p_now - s.last_seen_at < s.idle_timeout
  order by s.last_seen_at desc
$$;

create function app.session_end_own(
  p_token_hash bytea, p_session uuid, p_now timestamptz, p_reason text
) returns integer
language sql volatile security definer
set search_path = pg_catalog
as $$
  with mine as (
    select user_id from app.sessions
    where token_hash = p_token_hash and ended_at is null
  ), gone as (
    update app.sessions s set ended_at = p_now, end_reason = p_reason
    where s.user_id = (select user_id from mine) and s.ended_at is null
      and (p_session is null or s.id = p_session)
    returning 1
  )
  select count(*)::integer from gone
$$;

-- Used when someone else changes what a user may do (role, removal, password
-- reset): every session of that user ends and the next sign-in gets a fresh id.
create function app.session_end_user(
  p_user uuid, p_now timestamptz, p_reason text
) returns integer
language sql volatile security definer
set search_path = pg_catalog
as $$
  with gone as (
    update app.sessions set ended_at = p_now, end_reason = p_reason
    where user_id = p_user and ended_at is null
    returning 1
  )
  select count(*)::integer from gone
$$;

create function app.session_mark(
  p_token_hash bytea, p_now timestamptz, p_password boolean, p_mfa boolean
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  update app.sessions set
    authenticated_at = case when p_password then p_now else authenticated_at end,
    mfa_at = case when p_mfa then p_now else mfa_at end
  where token_hash = p_token_hash and ended_at is null
$$;

-- A WebAuthn challenge lives in the session it was issued to and is taken once.
create function app.session_set_challenge(
  p_token_hash bytea, p_purpose text, p_challenge bytea, p_expires timestamptz
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  update app.sessions set challenge = p_challenge, challenge_purpose = p_purpose,
    challenge_expires_at = p_expires
  where token_hash = p_token_hash and ended_at is null
$$;

create function app.session_take_challenge(
  p_token_hash bytea, p_purpose text, p_now timestamptz
) returns bytea
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_challenge bytea;
begin
  update app.sessions s set challenge = null, challenge_purpose = null,
    challenge_expires_at = null
  from app.sessions old
  where s.token_hash = p_token_hash and old.token_hash = s.token_hash
    and s.ended_at is null
  returning case
    when old.challenge_purpose = p_purpose and old.challenge_expires_at > p_now
    then old.challenge
  end into found_challenge;
  return found_challenge;
end
$$;

-- Throttling of failed sign-ins and second-factor attempts, per account and per
-- address. Keys are opaque to the database: the service passes a hash of the
-- email, never the email itself.
create table app.auth_throttle (
  key text primary key check (length(key) <= 120),
  failures integer not null default 0,
  window_started_at timestamptz not null,
  locked_until timestamptz
);
alter table app.auth_throttle enable row level security;

create function app.throttle_retry_after(p_keys text[], p_now timestamptz)
returns integer
language sql stable security definer
set search_path = pg_catalog
as $$
  select coalesce(
    max(ceil(extract(epoch from (locked_until - p_now))))::integer, 0
  )
  from app.auth_throttle
  where key = any (p_keys) and locked_until > p_now
$$;

-- Count a failure; once `p_limit` failures fall within the window the key is
-- locked, for a minute at first and twice as long after each further failure,
-- up to an hour. Returns the seconds until the key may try again (0 if free).
create function app.throttle_failure(
  p_key text, p_limit integer, p_window_seconds integer, p_now timestamptz
) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  t app.auth_throttle%rowtype;
begin
  insert into app.auth_throttle (key, failures, window_started_at)
  values (p_key, 0, p_now)
  on conflict (key) do nothing;
  select * into t from app.auth_throttle where key = p_key for update;
  if p_now - t.window_started_at > make_interval(secs => p_window_seconds) then
    t.failures := 0;
    t.window_started_at := p_now;
  end if;
  t.failures := t.failures + 1;
  if t.failures >= p_limit then
    t.locked_until := p_now + make_interval(
      secs => least(60 * power(2, least(t.failures - p_limit, 10)), 3600)
    );
  end if;
  update app.auth_throttle set failures = t.failures,
    window_started_at = t.window_started_at, locked_until = t.locked_until
  where key = p_key;
  return greatest(
    coalesce(ceil(extract(epoch from (t.locked_until - p_now)))::integer, 0), 0
  );
end
$$;

create function app.throttle_clear(p_key text) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$ delete from app.auth_throttle where key = p_key $$;

-- Password resets: single use, short-lived, only the token's hash is kept.
create table app.password_resets (
  token_hash bytea primary key check (length(token_hash) = 32),
  user_id uuid not null references app.users (id) on delete cascade,
  -- 'staff_enrolment' links are made by an operator for a new staff account; only
  -- they open a session, and only one that can enrol a second factor.
  purpose text not null default 'reset'
    check (purpose in ('reset', 'staff_enrolment')),
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz
);
alter table app.password_resets enable row level security;

create function app.password_reset_create(
  p_email text, p_token_hash bytea, p_now timestamptz, p_lifetime_seconds integer
) returns table (user_id uuid, email text, full_name text)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  u app.users%rowtype;
begin
  select * into u from app.users where lower(app.users.email) = lower(p_email);
  if not found then
    return;
  end if;
  insert into app.password_resets (token_hash, user_id, created_at, expires_at)
  values (
    p_token_hash, u.id, p_now, p_now + make_interval(secs => p_lifetime_seconds)
  );
  return query select u.id, u.email, u.full_name;
end
$$;

create function app.password_reset_peek(p_token_hash bytea, p_now timestamptz)
returns table (user_id uuid, email text, full_name text, purpose text)
language sql stable security definer
set search_path = pg_catalog
as $$
  select u.id, u.email, u.full_name, r.purpose
  from app.password_resets r join app.users u on u.id = r.user_id
  where r.token_hash = p_token_hash and r.used_at is null and r.expires_at > p_now
$$;

-- Set the new password, spend the token and end every session of the account.
-- Second factors are left exactly as they were: a reset proves control of the
-- mailbox, which must never be enough to take the second factor away.
create function app.password_reset_consume(
  p_token_hash bytea, p_now timestamptz, p_password_hash text
) returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  r app.password_resets%rowtype;
begin
  select * into r from app.password_resets
  where token_hash = p_token_hash for update;
  if not found or r.used_at is not null or r.expires_at <= p_now then
    raise exception 'reset link is not valid' using errcode = 'PR410';
  end if;
  update app.password_resets set used_at = p_now
    where user_id = r.user_id and used_at is null;
  update app.users set password_hash = p_password_hash where id = r.user_id;
  update app.sessions set ended_at = p_now, end_reason = 'password_reset'
    where user_id = r.user_id and ended_at is null;
  return r.user_id;
end
$$;

-- The security history: append-only rows, one per security-relevant fact. The
-- service may only read them (under its policy) and add them through
-- app.record_security_event; nothing may change or remove one.
create table app.security_events (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null,
  kind text not null check (kind ~ '^[a-z_]+(:[a-z_]+)+$'),
  user_id uuid references app.users (id) on delete set null,
  practice_id uuid references app.practices (id),
  actor_kind text not null
    check (actor_kind in ('user', 'staff', 'api_token', 'system', 'anonymous')),
  actor_id uuid,
  reason text check (reason ~ '^[a-z_]{1,40}$'),
  ip inet,
  user_agent text,
  detail jsonb not null default '{}'
);
create index security_events_user on app.security_events (user_id, occurred_at);
create index security_events_practice
  on app.security_events (practice_id, occurred_at);
alter table app.security_events enable row level security;

-- A user sees their own history; an owner sees the practice's, including the
-- account events (sign-in attempts) of its members.
create policy security_events_visible on app.security_events for select
  using (
    (
      user_id = (select perpetua.actor_id())
      and (select perpetua.actor_kind()) in ('user', 'staff')
    )
    or (
      (select perpetua.practice_role()) = 'owner'
      and (select perpetua.actor_kind()) = 'user'
      and (
        practice_id = (select perpetua.practice_id())
        or exists (
          select 1 from app.memberships m
          where m.user_id = security_events.user_id
            and m.practice_id = (select perpetua.practice_id())
        )
      )
    )
  );
grant select on app.security_events to perpetua_service;

create function app.record_security_event(
  p_at timestamptz,
  p_kind text,
  p_user uuid,
  p_practice uuid,
  p_actor_kind text,
  p_actor uuid,
  p_reason text,
  p_ip inet,
  p_user_agent text,
  p_detail jsonb
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  insert into app.security_events (
    occurred_at, kind, user_id, practice_id, actor_kind, actor_id, reason, ip,
    user_agent, detail
  ) values (
    p_at, p_kind, p_user, p_practice, p_actor_kind, p_actor, p_reason, p_ip,
    left(p_user_agent, 400), coalesce(p_detail, '{}')
  )
$$;

do $$
declare
  f text;
begin
  foreach f in array array[
    'app.has_second_factor(uuid)',
    'app.session_create(bytea, uuid, uuid, timestamptz, text, integer, integer, '
      || 'inet, text, boolean)',
    'app.session_resolve(bytea, timestamptz)',
    'app.session_list(bytea, timestamptz)',
    'app.session_end_own(bytea, uuid, timestamptz, text)',
    'app.session_end_user(uuid, timestamptz, text)',
    'app.session_mark(bytea, timestamptz, boolean, boolean)',
    'app.session_set_challenge(bytea, text, bytea, timestamptz)',
    'app.session_take_challenge(bytea, text, timestamptz)',
    'app.throttle_retry_after(text[], timestamptz)',
    'app.throttle_failure(text, integer, integer, timestamptz)',
    'app.throttle_clear(text)',
    'app.password_reset_create(text, bytea, timestamptz, integer)',
    'app.password_reset_peek(bytea, timestamptz)',
    'app.password_reset_consume(bytea, timestamptz, text)',
    'app.record_security_event(timestamptz, text, uuid, uuid, text, uuid, text, '
      || 'inet, text, jsonb)'
  ] loop
    execute format('revoke all on function %s from public', f);
    execute format('grant execute on function %s to perpetua_service', f);
  end loop;
end
$$;
