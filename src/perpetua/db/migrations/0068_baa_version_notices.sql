-- When a new version of the agreement is released, every practice whose agreement
-- in force is an older version is told so by email, once: the owners learn that
-- their signed version stays in force and that the new one awaits their signature.
-- The notice row is written first, in the same transaction as the messages
-- (outbox kind 'baa_new_version'): a second run of the job, or a concurrent one
-- waiting on the row's key, tells nobody twice.

create table app.baa_version_notices (
  practice_id uuid not null references app.practices (id),
  version text not null references app.baa_versions (version),
  noticed_at timestamptz not null,
  primary key (practice_id, version)
);

alter table app.baa_version_notices enable row level security;
alter table app.baa_version_notices force row level security;
create policy baa_version_notices_visible on app.baa_version_notices for select
  using (practice_id = (select perpetua.practice_id()));
create policy baa_version_notices_system on app.baa_version_notices for insert
  with check (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.actor_kind()) = 'system'
  );
grant select, insert on app.baa_version_notices to perpetua_service;

-- The job first lists, as the system acting in no practice, which practices hold
-- an agreement in force; it then acts in each practice under that practice's
-- claims. Executions hold no PHI: a version, a digest and two times.
create policy baa_executions_system_list on app.baa_executions for select
  using (
    (select perpetua.actor_kind()) = 'system'
    and (select perpetua.practice_id()) is null
  );
