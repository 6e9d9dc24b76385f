-- The permission matrix: role x data category x action, with the scope of rows it
-- reaches ('all' of the practice's, or only the provider's 'own' patients). This
-- table is the single source: the row-level policies read it through
-- perpetua.permits(), the API and the console load it at start. docs/permissions.md
-- explains every cell, and a test keeps the two identical.

create table perpetua.permissions (
  role text not null
    check (role in ('owner', 'manager', 'biller', 'front_desk', 'provider')),
  category text not null
    check (category in (
      'demographics', 'schedule', 'insurance', 'calls', 'clinical', 'audit_log'
    )),
  action text not null
    check (action in ('view', 'create', 'update', 'delete', 'export')),
  scope text not null default 'all' check (scope in ('all', 'own')),
  primary key (role, category, action)
);

insert into perpetua.permissions (role, category, action, scope)
select r, c, a, 'all'
from (values ('owner')) roles (r),
     (values ('demographics'), ('schedule'), ('insurance')) cats (c),
     (values ('view'), ('create'), ('update'), ('delete'), ('export')) acts (a);

insert into perpetua.permissions (role, category, action, scope) values
  ('owner', 'calls', 'view', 'all'),
  ('owner', 'calls', 'export', 'all'),
  ('owner', 'calls', 'delete', 'all'),
  ('owner', 'audit_log', 'view', 'all'),
  ('owner', 'audit_log', 'export', 'all'),

  ('manager', 'demographics', 'view', 'all'),
  ('manager', 'demographics', 'create', 'all'),
  ('manager', 'demographics', 'update', 'all'),
  ('manager', 'demographics', 'export', 'all'),
  ('manager', 'schedule', 'view', 'all'),
  ('manager', 'schedule', 'create', 'all'),
  ('manager', 'schedule', 'update', 'all'),
  ('manager', 'schedule', 'delete', 'all'),
  ('manager', 'schedule', 'export', 'all'),
  ('manager', 'insurance', 'view', 'all'),
  ('manager', 'insurance', 'create', 'all'),
  ('manager', 'insurance', 'update', 'all'),
  ('manager', 'calls', 'view', 'all'),
  ('manager', 'audit_log', 'view', 'all'),
  ('manager', 'audit_log', 'export', 'all'),

  ('biller', 'demographics', 'view', 'all'),
  ('biller', 'schedule', 'view', 'all'),
  ('biller', 'insurance', 'view', 'all'),
  ('biller', 'insurance', 'create', 'all'),
  ('biller', 'insurance', 'update', 'all'),
  ('biller', 'insurance', 'delete', 'all'),
  ('biller', 'insurance', 'export', 'all'),

  ('front_desk', 'demographics', 'view', 'all'),
  ('front_desk', 'demographics', 'create', 'all'),
  ('front_desk', 'demographics', 'update', 'all'),
  ('front_desk', 'schedule', 'view', 'all'),
  ('front_desk', 'schedule', 'create', 'all'),
  ('front_desk', 'schedule', 'update', 'all'),
  ('front_desk', 'insurance', 'view', 'all'),
  ('front_desk', 'insurance', 'create', 'all'),
  ('front_desk', 'insurance', 'update', 'all'),
  ('front_desk', 'calls', 'view', 'all'),

  ('provider', 'demographics', 'view', 'own'),
  ('provider', 'schedule', 'view', 'own'),
  ('provider', 'calls', 'view', 'own'),
  ('provider', 'clinical', 'view', 'own');

grant select on perpetua.permissions to perpetua_service;

-- A provider's membership names the provider whose schedule is theirs.
alter table app.memberships add column if not exists provider_id uuid;

-- Whether the claims permit an action on a category, and over which rows.
-- Returns 'all', 'own' or NULL (denied). Agents and API tokens carry a `scopes`
-- array of 'category:action' strings that can only narrow what the role allows;
-- an agent has no role, so its scopes are all it has. Clinical access needs the
-- practice to have enabled an agent that uses it, whatever the role says.
create function perpetua.permits(p_category text, p_action text) returns text
language plpgsql stable
set search_path = pg_catalog
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
       jsonb_typeof(c -> 'scopes') <> 'array' or not (c -> 'scopes') ? wanted
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

-- Practice-level switches that widen access; every one defaults to off.
create table app.practice_features (
  practice_id uuid primary key references app.practices (id),
  clinical_agent_enabled boolean not null default false,
  updated_at timestamptz not null default now()
);
alter table app.practice_features enable row level security;
alter table app.practice_features force row level security;
create policy practice_features_visible on app.practice_features for select
  using (practice_id = (select perpetua.practice_id()));
create policy practice_features_owner on app.practice_features for all
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
  );
grant select, insert, update on app.practice_features to perpetua_service;

-- The purpose of use recorded when a request states none: per practice and role,
-- falling back to the role's usual purpose.
create table app.purpose_defaults (
  practice_id uuid not null references app.practices (id),
  role text not null
    check (role in ('owner', 'manager', 'biller', 'front_desk', 'provider')),
  purpose_of_use text not null check (purpose_of_use in ('TREAT', 'HPAYMT', 'HOPERAT')),
  primary key (practice_id, role)
);
alter table app.purpose_defaults enable row level security;
alter table app.purpose_defaults force row level security;
create policy purpose_defaults_visible on app.purpose_defaults for select
  using (practice_id = (select perpetua.practice_id()));
create policy purpose_defaults_owner on app.purpose_defaults for all
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  )
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
grant select, insert, update, delete on app.purpose_defaults to perpetua_service;

create function perpetua.effective_purpose() returns text
language sql stable
set search_path = pg_catalog
as $$
  select coalesce(
    case
      when perpetua.purpose_of_use() in ('TREAT', 'HPAYMT', 'HOPERAT', 'ETREAT', 'BTG')
      then perpetua.purpose_of_use()
    end,
    (select d.purpose_of_use from app.purpose_defaults d
      where d.practice_id = perpetua.practice_id()
        and d.role = perpetua.practice_role()),
    case perpetua.practice_role()
      when 'provider' then 'TREAT'
      when 'biller' then 'HPAYMT'
      else 'HOPERAT'
    end
  )
$$;

-- The providers whose schedules belong to the acting member.
create function perpetua.my_provider_ids() returns uuid[]
language sql stable
set search_path = pg_catalog
as $$
  select coalesce(array_agg(m.provider_id), '{}')
  from app.memberships m
  where m.user_id = perpetua.actor_id()
    and m.practice_id = perpetua.practice_id()
    and m.provider_id is not null
$$;

revoke all on function perpetua.permits(text, text) from public;
revoke all on function perpetua.effective_purpose() from public;
revoke all on function perpetua.my_provider_ids() from public;
grant execute on function perpetua.permits(text, text) to perpetua_service;
grant execute on function perpetua.effective_purpose() to perpetua_service;
grant execute on function perpetua.my_provider_ids() to perpetua_service;
