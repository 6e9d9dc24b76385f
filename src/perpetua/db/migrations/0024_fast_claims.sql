-- Reading the claims is part of every policy check of every row, so it must be
-- cheap. Two changes, neither altering what is accepted or refused:
--
-- * On PostgreSQL 16 and newer the claims JSON is checked with pg_input_is_valid
--   instead of an exception handler, each of which opened a subtransaction, and
--   once checked in a transaction the same claims text is not checked again.
--   PostgreSQL 15 keeps the version from 0001.
-- * The helpers the policies call are PL/pgSQL without a SET clause: PL/pgSQL
--   caches its plans for the session (SQL functions with a SET clause are planned
--   again on every call), and a SET clause costs a configuration save and restore
--   per call. These helpers run with the caller's rights and name every object
--   with its schema; the service role cannot create objects anywhere, so nothing
--   can shadow them. SECURITY DEFINER functions keep their fixed search_path.

do $migration$
begin
  if current_setting('server_version_num')::int >= 160000 then
    execute $fn$
      create or replace function perpetua.valid_claims() returns jsonb
      language plpgsql stable parallel safe
      as $body$
      declare
        raw text := pg_catalog.current_setting('request.jwt.claims', true);
        c jsonb;
        uuid_re constant text :=
          '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
      begin
        if raw is null or raw = '' then
          return null;
        end if;
        -- The policies ask many times per statement; claims already checked in
        -- this transaction are only parsed again. Claims set later (another
        -- request's, say) differ from the remembered text and are checked anew.
        if pg_catalog.current_setting('perpetua.claims_checked', true) = raw then
          return raw::jsonb;
        end if;
        if not pg_catalog.pg_input_is_valid(raw, 'jsonb') then
          return null;
        end if;
        c := raw::jsonb;
        if pg_catalog.jsonb_typeof(c) <> 'object'
           or coalesce(c ->> 'actor_kind', '') not in
                ('user', 'agent', 'api_token', 'staff', 'system')
           or coalesce(c ->> 'sub', '') !~ uuid_re
           or coalesce(c ->> 'request_id', '') = ''
           or pg_catalog.length(c ->> 'request_id') > 100 then
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
        perform pg_catalog.set_config('perpetua.claims_checked', raw, true);
        return c;
      end
      $body$
    $fn$;
  end if;
end
$migration$;

create or replace function perpetua.actor_kind() returns text
language plpgsql stable parallel safe
as $$ begin return perpetua.valid_claims() ->> 'actor_kind'; end $$;

create or replace function perpetua.actor_id() returns uuid
language plpgsql stable parallel safe
as $$ begin return (perpetua.valid_claims() ->> 'sub')::uuid; end $$;

create or replace function perpetua.practice_id() returns uuid
language plpgsql stable parallel safe
as $$ begin return (perpetua.valid_claims() ->> 'practice_id')::uuid; end $$;

create or replace function perpetua.practice_role() returns text
language plpgsql stable parallel safe
as $$ begin return perpetua.valid_claims() ->> 'practice_role'; end $$;

create or replace function perpetua.purpose_of_use() returns text
language plpgsql stable parallel safe
as $$ begin return perpetua.valid_claims() ->> 'purpose_of_use'; end $$;

create or replace function perpetua.request_id() returns text
language plpgsql stable parallel safe
as $$ begin return perpetua.valid_claims() ->> 'request_id'; end $$;

create or replace function perpetua.effective_purpose() returns text
language plpgsql stable
as $$
declare
  c jsonb := perpetua.valid_claims();
  chosen text;
begin
  if c ->> 'purpose_of_use' in ('TREAT', 'HPAYMT', 'HOPERAT', 'ETREAT', 'BTG') then
    return c ->> 'purpose_of_use';
  end if;
  select d.purpose_of_use into chosen from app.purpose_defaults d
  where d.practice_id = (c ->> 'practice_id')::uuid
    and d.role = c ->> 'practice_role';
  return coalesce(chosen, case c ->> 'practice_role'
    when 'provider' then 'TREAT'
    when 'biller' then 'HPAYMT'
    else 'HOPERAT'
  end);
end
$$;

create or replace function perpetua.permits(p_category text, p_action text)
returns text
language plpgsql stable
as $$
declare
  c jsonb := perpetua.valid_claims();
  wanted text := p_category || ':' || p_action;
  granted text;
begin
  if c is null or not c ? 'practice_id' then
    return null;
  end if;
  if c ? 'scopes' and (
       pg_catalog.jsonb_typeof(c -> 'scopes') <> 'array'
       or not (c -> 'scopes') ? wanted
     ) then
    return null;
  end if;
  if p_category = 'clinical' and not exists (
       select 1 from app.practice_features f
       where f.practice_id = (c ->> 'practice_id')::uuid and f.clinical_agent_enabled
     ) then
    return null;
  end if;
  if c ->> 'actor_kind' = 'agent' then
    return case when c ? 'scopes' then 'all' end;
  end if;
  select p.scope into granted
  from perpetua.permissions p
  where p.role = c ->> 'practice_role'
    and p.category = p_category
    and p.action = p_action;
  return granted;
end
$$;

create or replace function perpetua.my_provider_ids() returns uuid[]
language plpgsql stable
as $$
declare
  found uuid[];
begin
  select coalesce(pg_catalog.array_agg(m.provider_id), '{}') into found
  from app.memberships m
  where m.user_id = perpetua.actor_id()
    and m.practice_id = perpetua.practice_id()
    and m.provider_id is not null;
  return found;
end
$$;

create or replace function perpetua.break_glass_open(p_patient uuid) returns boolean
language plpgsql stable
as $$
begin
  return perpetua.purpose_of_use() = 'BTG' and exists (
    select 1 from phi.break_glass_grants g
    where g.practice_id = perpetua.practice_id()
      and g.user_id = perpetua.actor_id()
      and g.patient_id = p_patient
      and pg_catalog.now() between g.starts_at and g.expires_at
  );
end
$$;

create or replace function perpetua.is_own_patient(p_patient uuid) returns boolean
language plpgsql stable
as $$
begin
  return exists (
    select 1 from phi.appointments a
    where a.practice_id = perpetua.practice_id()
      and a.patient_id = p_patient
      and a.provider_id = any (perpetua.my_provider_ids())
  );
end
$$;

create or replace function perpetua.may_touch(
  p_category text, p_action text, p_patient uuid
) returns boolean
language plpgsql stable
as $$
declare
  scope text := perpetua.permits(p_category, p_action);
begin
  if scope = 'all' then
    return true;
  elsif scope = 'own' and perpetua.is_own_patient(p_patient) then
    return true;
  end if;
  -- Outside the role (or outside a provider's own patients), only an open
  -- break-glass grant for this patient admits a view.
  return p_action = 'view' and perpetua.break_glass_open(p_patient);
end
$$;
