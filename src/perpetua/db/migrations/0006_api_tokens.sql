-- API tokens for a practice's integrations.
--
-- A token belongs to a practice and carries a set of scopes; only its SHA-256 is
-- kept. It acts with the role its creator holds now, narrowed by its scopes: if
-- the creator leaves the practice, the token stops working.

create table app.api_tokens (
  id uuid primary key,
  practice_id uuid not null references app.practices (id),
  name text not null check (length(btrim(name)) between 1 and 80),
  token_hash bytea not null unique check (length(token_hash) = 32),
  scopes text[] not null,
  created_by uuid not null references app.users (id),
  created_at timestamptz not null,
  revoked_at timestamptz,
  last_used_at timestamptz,
  last_used_ip inet
);
create index api_tokens_practice on app.api_tokens (practice_id);
-- Enabled, not forced: the owner-run lookup below must find a token before anyone
-- is identified; the service sees tokens only under the policies.
alter table app.api_tokens enable row level security;

create policy api_tokens_visible on app.api_tokens for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
    and (select perpetua.actor_kind()) = 'user'
  );
create policy api_tokens_create on app.api_tokens for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
    and (select perpetua.actor_kind()) = 'user'
    and created_by = (select perpetua.actor_id())
  );
create policy api_tokens_revoke on app.api_tokens for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
    and (select perpetua.actor_kind()) = 'user'
  );
grant select, insert on app.api_tokens to perpetua_service;
grant update (revoked_at) on app.api_tokens to perpetua_service;

create trigger api_tokens_writable before insert on app.api_tokens
  for each row execute function perpetua.guard_practice_writable();

-- Resolve a presented token and record its use. Returns nothing for an unknown,
-- revoked or orphaned token.
create function app.api_token_resolve(
  p_token_hash bytea, p_now timestamptz, p_ip inet
) returns table (token_id uuid, practice_id uuid, role text, scopes text[])
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  t app.api_tokens%rowtype;
  creator_role text;
begin
  select * into t from app.api_tokens a
  where a.token_hash = p_token_hash and a.revoked_at is null;
  if not found then
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
