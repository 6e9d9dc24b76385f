-- A revoked API token that is still presented is a sign that it leaked: the lookup
-- now records each such attempt in the security history (kind
-- practice:api_token:revoked_used, with the token id and the caller's address), so
-- the token detector can raise an alert. Everything else about the lookup is as
-- it was in 0006.

create or replace function app.api_token_resolve(
  p_token_hash bytea, p_now timestamptz, p_ip inet
) returns table (token_id uuid, practice_id uuid, role text, scopes text[])
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  t app.api_tokens%rowtype;
  creator_role text;
begin
  select * into t from app.api_tokens a where a.token_hash = p_token_hash;
  if not found then
    return;
  end if;
  if t.revoked_at is not null then
    insert into app.security_events (
      occurred_at, kind, practice_id, actor_kind, actor_id, ip, detail
    ) values (
      p_now, 'practice:api_token:revoked_used', t.practice_id, 'api_token', t.id,
      p_ip, jsonb_build_object('token_id', t.id)
    );
    return;
  end if;
  perform set_config(
    'request.jwt.claims',
    jsonb_build_object(
      'actor_kind', 'user', 'sub', t.created_by, 'request_id', 'api_token_resolve'
    )::text,
    true
  );
  select m.role into creator_role from app.memberships m
  where m.practice_id = t.practice_id and m.user_id = t.created_by;
  if creator_role is null then
    return;
  end if;
  update app.api_tokens set last_used_at = p_now, last_used_ip = p_ip
    where id = t.id;
  return query select t.id, t.practice_id, creator_role, t.scopes;
end
$$;

revoke all on function app.api_token_resolve(bytea, timestamptz, inet) from public;
grant execute on function app.api_token_resolve(bytea, timestamptz, inet)
  to perpetua_service;
