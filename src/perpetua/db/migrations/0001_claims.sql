-- How identity reaches the database.
--
-- Every transaction the service opens carries the caller's claims as JSON in the
-- setting `request.jwt.claims`, as PostgREST and Supabase do. Policies read the claims
-- only through the helpers below, so the same migrations run unchanged on Supabase.
-- Claims that are missing, not JSON, or malformed in any field make every helper
-- return NULL, and NULL matches no policy: a bad claim denies everything.

create schema perpetua;
grant usage on schema perpetua to perpetua_service;

create function perpetua.valid_claims() returns jsonb
language plpgsql stable parallel safe
set search_path = pg_catalog
as $$
declare
  raw text := current_setting('request.jwt.claims', true);
  c jsonb;
  uuid_re constant text :=
    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
begin
  if raw is null or raw = '' then
    return null;
  end if;
  begin
    c := raw::jsonb;
  exception when others then
    return null;
  end;
  if jsonb_typeof(c) <> 'object' then
    return null;
  end if;
  if coalesce(c ->> 'actor_kind', '') not in
       ('user', 'agent', 'api_token', 'staff', 'system')
     or coalesce(c ->> 'sub', '') !~ uuid_re
     or coalesce(c ->> 'request_id', '') = ''
     or length(c ->> 'request_id') > 100 then
    return null;
  end if;
  if c ? 'practice_id' and coalesce(c ->> 'practice_id', '') !~ uuid_re then
    return null;
  end if;
  if c ? 'practice_role' and (
       not c ? 'practice_id'
       or coalesce(c ->> 'practice_role', '') not in
            ('owner', 'manager', 'biller', 'front_desk', 'provider')
     ) then
    return null;
  end if;
  return c;
end
$$;

create function perpetua.actor_kind() returns text
language sql stable parallel safe
set search_path = pg_catalog
as $$ select perpetua.valid_claims() ->> 'actor_kind' $$;

create function perpetua.actor_id() returns uuid
language sql stable parallel safe
set search_path = pg_catalog
as $$ select (perpetua.valid_claims() ->> 'sub')::uuid $$;

create function perpetua.practice_id() returns uuid
language sql stable parallel safe
set search_path = pg_catalog
as $$ select (perpetua.valid_claims() ->> 'practice_id')::uuid $$;

create function perpetua.practice_role() returns text
language sql stable parallel safe
set search_path = pg_catalog
as $$ select perpetua.valid_claims() ->> 'practice_role' $$;

create function perpetua.purpose_of_use() returns text
language sql stable parallel safe
set search_path = pg_catalog
as $$ select perpetua.valid_claims() ->> 'purpose_of_use' $$;

create function perpetua.request_id() returns text
language sql stable parallel safe
set search_path = pg_catalog
as $$ select perpetua.valid_claims() ->> 'request_id' $$;

revoke all on all functions in schema perpetua from public;
grant execute on all functions in schema perpetua to perpetua_service;
