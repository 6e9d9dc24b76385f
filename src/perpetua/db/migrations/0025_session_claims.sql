-- A read can resolve its caller's session inside its own transaction: the
-- session check, the claims, the audit event and the rows then cost one round
-- trip instead of two. The claims are built here from the session row, never from
-- what the client sent: the request contributes only its id, address, user agent,
-- and the purpose and reason it states, each of which valid_claims() and the
-- audit table check again.
--
-- The refusals mirror what the service decides for a session it resolved itself
-- (identity/sessions.py, web/context.py), each with its own SQLSTATE:
--   PS401 no such session            PS419 the session has ended
--   PS421 a second factor is pending PS422 a second factor must be enrolled
--   PS404 the session acts in no practice (staff, or a user between practices)
-- A refusal aborts the transaction, so an ended session's end is not written
-- here; it is derived again from the same timestamps on every later use.

create function app.session_claims(
  p_token_hash bytea, p_now timestamptz, p_request jsonb
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  s record;
begin
  select * into s from app.session_resolve(p_token_hash, p_now);
  if not found then
    raise exception 'not signed in' using errcode = 'PS401';
  end if;
  if s.ended_reason is not null then
    raise exception 'session ended' using errcode = 'PS419';
  end if;
  if s.state = 'mfa_pending' then
    raise exception 'second factor pending' using errcode = 'PS421';
  end if;
  if s.state <> 'full' then
    raise exception 'second factor enrolment required' using errcode = 'PS422';
  end if;
  -- Staff never carry a practice: they have no way to PHI.
  if s.user_kind = 'staff' or s.practice_id is null or s.practice_role is null then
    raise exception 'no practice' using errcode = 'PS404';
  end if;
  perform set_config(
    'request.jwt.claims',
    jsonb_strip_nulls(jsonb_build_object(
      'actor_kind', 'user',
      'sub', s.user_id,
      'request_id', p_request ->> 'request_id',
      'practice_id', s.practice_id,
      'practice_role', s.practice_role,
      'purpose_of_use', p_request ->> 'purpose_of_use',
      'reason', p_request ->> 'reason',
      'client_ip', p_request ->> 'client_ip',
      'user_agent', p_request ->> 'user_agent'
    ))::text,
    true
  );
end
$$;

revoke all on function app.session_claims(bytea, timestamptz, jsonb) from public;
grant execute on function app.session_claims(bytea, timestamptz, jsonb)
  to perpetua_service;
