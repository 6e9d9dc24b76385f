-- Sign-in lookups and sessions.
--
-- These run before the caller is known, so they are SECURITY DEFINER functions with
-- a fixed search_path, each doing one narrow thing. The service role has no
-- privileges on app.sessions: a session can only be made, resolved or ended here.
-- The cookie holds a random token; only its SHA-256 is stored.

create function app.login_lookup(p_email text)
returns table (user_id uuid, password_hash text, kind text)
language sql stable security definer
set search_path = pg_catalog
as $$
  select u.id, u.password_hash, u.kind
  from app.users u
  where lower(u.email) = lower(p_email)
$$;

create function app.email_registered(p_email text) returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$ select exists (select 1 from app.users where lower(email) = lower(p_email)) $$;

create function app.session_create(
  p_token_hash bytea,
  p_user uuid,
  p_practice uuid,
  p_now timestamptz,
  p_idle_seconds integer,
  p_absolute_seconds integer,
  p_ip inet,
  p_user_agent text
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if p_practice is not null then
    -- Memberships are under forced row-level security even for this function's
    -- owner, so look with the user's own identity.
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
  end if;
  insert into app.sessions (
    token_hash, user_id, practice_id, created_at, last_seen_at, idle_timeout,
    expires_at, ip, user_agent
  ) values (
    p_token_hash, p_user, p_practice, p_now, p_now,
    make_interval(secs => p_idle_seconds),
    p_now + make_interval(secs => p_absolute_seconds),
    p_ip, left(p_user_agent, 400)
  );
end
$$;

-- Resolve a session token to the identity a request acts with. An idle or expired
-- session is ended here, so it can never be revived.
create function app.session_resolve(p_token_hash bytea, p_now timestamptz)
returns table (
  user_id uuid,
  user_kind text,
  practice_id uuid,
  practice_role text,
  ended_reason text
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  s app.sessions%rowtype;
  reason text;
begin
  select * into s from app.sessions where token_hash = p_token_hash for update;
  if not found then
    return;
  end if;
  if s.ended_at is not null then
    reason := coalesce(s.end_reason, 'signed_out');
  elsif p_now >= s.expires_at then
    reason := 'absolute_timeout';
  elsif p_now - s.last_seen_at >= s.idle_timeout then
    reason := 'idle_timeout';
  end if;
  if reason is not null then
    update app.sessions
      set ended_at = coalesce(ended_at, p_now), end_reason = reason
      where token_hash = p_token_hash;
    return query select s.user_id, null::text, null::uuid, null::text, reason;
    return;
  end if;
  update app.sessions set last_seen_at = p_now where token_hash = p_token_hash;
  perform set_config(
    'request.jwt.claims',
    jsonb_build_object(
      'actor_kind', 'user', 'sub', s.user_id, 'request_id', 'session_resolve'
    )::text,
    true
  );
  return query
    select u.id, u.kind, s.practice_id, m.role, null::text
    from app.users u
    left join app.memberships m
      on m.user_id = u.id and m.practice_id = s.practice_id
    where u.id = s.user_id;
end
$$;

create function app.session_end(
  p_token_hash bytea, p_now timestamptz, p_reason text
) returns void
language sql volatile security definer
set search_path = pg_catalog
as $$
  update app.sessions
    set ended_at = p_now, end_reason = p_reason
    where token_hash = p_token_hash and ended_at is null
$$;

-- Ended sessions are kept for a month for the security history, then removed.
create function app.sessions_purge(p_now timestamptz) returns integer
language sql volatile security definer
set search_path = pg_catalog
as $$
  with gone as (
    delete from app.sessions
    where coalesce(ended_at, expires_at) < p_now - interval '30 days'
    returning 1
  )
  select count(*)::integer from gone
$$;

revoke all on function app.login_lookup(text) from public;
revoke all on function app.email_registered(text) from public;
revoke all on function
  app.session_create(bytea, uuid, uuid, timestamptz, integer, integer, inet, text)
  from public;
revoke all on function app.session_resolve(bytea, timestamptz) from public;
revoke all on function app.session_end(bytea, timestamptz, text) from public;
revoke all on function app.sessions_purge(timestamptz) from public;

grant execute on function app.login_lookup(text) to perpetua_service;
grant execute on function app.email_registered(text) to perpetua_service;
grant execute on function
  app.session_create(bytea, uuid, uuid, timestamptz, integer, integer, inet, text)
  to perpetua_service;
grant execute on function app.session_resolve(bytea, timestamptz)
  to perpetua_service;
grant execute on function app.session_end(bytea, timestamptz, text)
  to perpetua_service;
grant execute on function app.sessions_purge(timestamptz) to perpetua_service;
