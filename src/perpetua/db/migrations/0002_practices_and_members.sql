-- Practices (the covered entities), the people who sign in, and their roles.
--
-- Practice-scoped tables have row-level security enabled and forced, so that even
-- the owner role sees only what the claims allow. Accounts (`app.users`) and
-- sessions are looked up before anyone is identified (sign-in, cookie resolution):
-- that happens only inside the narrow SECURITY DEFINER functions below, and the
-- service role cannot touch sessions at all except through them.

create schema app;
grant usage on schema app to perpetua_service;

create table app.practices (
  id uuid primary key,
  name text not null check (length(btrim(name)) between 1 and 200),
  created_at timestamptz not null default now(),
  trial_ends_at timestamptz not null,
  plan text check (plan in ('standard')),
  plan_started_at timestamptz
);

create table app.users (
  id uuid primary key,
  email text not null check (length(email) between 3 and 254),
  full_name text not null check (length(btrim(full_name)) between 1 and 200),
  password_hash text not null,
  kind text not null default 'member' check (kind in ('member', 'staff')),
  created_at timestamptz not null default now()
);
create unique index users_email_key on app.users (lower(email));

create table app.memberships (
  practice_id uuid not null references app.practices (id),
  user_id uuid not null references app.users (id),
  role text not null
    check (role in ('owner', 'manager', 'biller', 'front_desk', 'provider')),
  created_at timestamptz not null default now(),
  primary key (practice_id, user_id)
);
create index memberships_user on app.memberships (user_id);

create table app.sessions (
  token_hash bytea primary key check (length(token_hash) = 32),
  user_id uuid not null references app.users (id) on delete cascade,
  practice_id uuid references app.practices (id),
  created_at timestamptz not null,
  last_seen_at timestamptz not null,
  idle_timeout interval not null,
  expires_at timestamptz not null,
  ended_at timestamptz,
  end_reason text,
  ip inet,
  user_agent text
);
create index sessions_user on app.sessions (user_id);

alter table app.practices enable row level security;
alter table app.practices force row level security;
alter table app.memberships enable row level security;
alter table app.memberships force row level security;
alter table app.users enable row level security;
alter table app.sessions enable row level security;

-- A member sees the practices they belong to; the claimed practice is the one the
-- request acts in.
create policy practices_visible on app.practices for select
  using (
    id = (select perpetua.practice_id())
    or exists (
      select 1 from app.memberships m
      where m.practice_id = practices.id
        and m.user_id = (select perpetua.actor_id())
    )
  );
create policy practices_signup on app.practices for insert
  with check (
    id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
    and (select perpetua.actor_kind()) = 'user'
  );
create policy practices_rename on app.practices for update
  using (
    id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
-- Plans are set by operators (the owner role, acting as the system actor); the
-- service role has no privilege on the plan columns at all.
create policy practices_plan on app.practices for update
  using (
    id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );

create policy memberships_visible on app.memberships for select
  using (
    practice_id = (select perpetua.practice_id())
    or user_id = (select perpetua.actor_id())
  );
create policy memberships_insert on app.memberships for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
  );
create policy memberships_update on app.memberships for update
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
  );
create policy memberships_delete on app.memberships for delete
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) = 'owner'
  );

create policy users_visible on app.users for select
  using (
    id = (select perpetua.actor_id())
    or exists (
      select 1 from app.memberships m
      where m.user_id = users.id
        and m.practice_id = (select perpetua.practice_id())
    )
  );
create policy users_create_self on app.users for insert
  with check (id = (select perpetua.actor_id()) and kind = 'member');
create policy users_update_self on app.users for update
  using (id = (select perpetua.actor_id()));

grant select, insert on app.practices to perpetua_service;
grant update (name) on app.practices to perpetua_service;
grant select, insert on app.users to perpetua_service;
grant update (full_name, password_hash) on app.users to perpetua_service;
grant select, insert, delete on app.memberships to perpetua_service;
grant update (role) on app.memberships to perpetua_service;

-- A practice whose trial ended without a plan is read-only: nothing is deleted, but
-- nothing changes until a plan is chosen.
create function perpetua.assert_practice_writable(p_practice uuid) returns void
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  ends timestamptz;
  has_plan boolean;
begin
  select trial_ends_at, plan is not null into ends, has_plan
  from app.practices where id = p_practice;
  if found and not has_plan and ends <= now() then
    raise exception 'practice is read-only: the trial has ended'
      using errcode = 'PR001';
  end if;
end
$$;

create function perpetua.guard_practice_writable() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if tg_table_name = 'practices' then
    perform perpetua.assert_practice_writable(old.id);
  elsif tg_op = 'DELETE' then
    perform perpetua.assert_practice_writable(old.practice_id);
  else
    perform perpetua.assert_practice_writable(new.practice_id);
  end if;
  return coalesce(new, old);
end
$$;

create trigger practices_writable before update of name on app.practices
  for each row execute function perpetua.guard_practice_writable();
create trigger memberships_writable before insert or update or delete
  on app.memberships
  for each row execute function perpetua.guard_practice_writable();

revoke all on function perpetua.assert_practice_writable(uuid) from public;
revoke all on function perpetua.guard_practice_writable() from public;
grant execute on function perpetua.assert_practice_writable(uuid)
  to perpetua_service;
grant execute on function perpetua.guard_practice_writable() to perpetua_service;
