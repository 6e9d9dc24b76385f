-- Every signed-in request resolves its session, so resolving costs two queries
-- instead of four; what is decided is unchanged.
--
-- * The practice's idle timeout, the second-factor requirement and the member's
--   role come from one join, read right after the session row. A practice the
--   session can no longer see falls back to the idle timeout the session was
--   created with (before, it disabled the idle check).
-- * app.has_second_factor becomes PL/pgSQL, whose plan is kept for the session,
--   instead of an SQL function with a SET clause, planned again on every call.

create or replace function app.has_second_factor(p_user uuid) returns boolean
language plpgsql stable security definer
set search_path = pg_catalog
as $$
begin
  return exists (
    select 1 from app.totp_factors
    where user_id = p_user and confirmed_at is not null
  ) or exists (select 1 from app.webauthn_credentials where user_id = p_user);
end
$$;

create or replace function app.session_resolve(p_token_hash bytea, p_now timestamptz)
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
  kind text;
  member_role text;
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
  select u.kind, m.role,
         coalesce(make_interval(mins => p.session_idle_minutes), s.idle_timeout),
         (u.kind = 'staff' or coalesce(p.require_mfa, false))
           and not app.has_second_factor(u.id)
    into kind, member_role, idle, must_enrol
  from app.users u
  left join app.practices p on p.id = s.practice_id
  left join app.memberships m
    on m.user_id = u.id and m.practice_id = s.practice_id
  where u.id = s.user_id;

  if s.ended_at is not null then
    reason := coalesce(s.end_reason, 'signed_out');
  elsif p_now >= s.expires_at then
    reason := 'absolute_timeout';
  elsif p_now - s.last_seen_at >= coalesce(idle, s.idle_timeout) then
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
  if kind is null then
    return;
  end if;
  -- Activity is written at most every 30 seconds, so most requests leave the
  -- session untouched and commit nothing. An idle session therefore ends up to
  -- 30 seconds early, never late.
  if p_now - s.last_seen_at >= interval '30 seconds' then
    update app.sessions set last_seen_at = p_now
    where token_hash = p_token_hash and last_seen_at < p_now;
  end if;

  return query select
    s.id, s.user_id, kind, s.practice_id, member_role,
    case when s.state = 'full' and must_enrol then 'mfa_enrolment' else s.state end,
    s.authenticated_at, s.mfa_at, null::text;
end
$$;
