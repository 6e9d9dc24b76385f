-- Twilio recording fetches that need a person: the ones Perpetua gave up on
-- (failed, gone, refused), the ones stopped by rejected credentials, and the ones
-- still waiting long after they were queued. Owners and managers read them, so
-- that a recording left at Twilio is seen in the console rather than only in the
-- database and the audit log.
--
-- Each row names a call (its id), Twilio's recording SID (what the practice needs
-- to find the recording in its own Twilio account; not PHI), the state of the
-- fetch and its last error code. The read is recorded as a `view` of resource
-- twilio_recording, naming the calls and their patients, before any row leaves:
-- no audit row, no data.

-- Managers may read the queue too, like owners: the policies still hold every
-- other role and every other practice out, and the queue is written by the
-- system only.
create policy twilio_fetches_review on phi.twilio_recording_fetches for select
  using (
    practice_id = (select perpetua.practice_id())
    and (select perpetua.practice_role()) in ('owner', 'manager')
    and (select perpetua.actor_kind()) = 'user'
  );

-- The "credentials rejected" notice stays the owners' (and the system's): only an
-- owner can save new credentials, and managers now pass the read policy above.
create or replace function phi_api.twilio_credentials_rejected() returns boolean
language sql stable security definer
set search_path = pg_catalog
as $$
  select coalesce(
      perpetua.actor_kind() = 'system' or perpetua.practice_role() = 'owner',
      false
    )
    and exists (
      select 1 from phi.twilio_recording_fetches f
      left join app.call_settings s on s.practice_id = f.practice_id
      where f.practice_id = perpetua.practice_id()
        and f.status = 'credentials_rejected'
        and (s.updated_at is null or f.updated_at >= s.updated_at)
    )
$$;

-- The claimed practice's fetches that need attention, most recently changed
-- first (at most 500): failed, gone, refused and credentials_rejected ones, and
-- pending or delete_pending ones queued before p_now - p_waiting. For each, also
-- whether the call is recorded (the console links to it) and whether its
-- recording is stored in Perpetua (a failed deletion at Twilio leaves a stored
-- recording behind). Other roles are refused and the refusal recorded; the
-- policies decide tenancy and, again, the roles.
create function phi_api.twilio_fetches_for_review(
  p_now timestamptz, p_waiting interval
)
returns table (
  id uuid, call_id uuid, recording_sid text, status text, attempts integer,
  last_error text, created_at timestamptz, updated_at timestamptz,
  call_recorded boolean, recording_stored boolean
)
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_ids uuid[];
  calls uuid[];
  patients uuid[];
begin
  if not coalesce(
    perpetua.actor_kind() = 'user'
      and perpetua.practice_role() in ('owner', 'manager'),
    false
  ) then
    perform phi_api.deny('view', 'twilio_recording', '{}');
    return;
  end if;
  select coalesce(array_agg(f.id), '{}') into found_ids
  from (
    select f.id from phi.twilio_recording_fetches f
    where f.practice_id = perpetua.practice_id()
      and (
        f.status in ('failed', 'gone', 'refused', 'credentials_rejected')
        or (
          f.status in ('pending', 'delete_pending')
          and f.created_at < p_now - p_waiting
        )
      )
    order by f.updated_at desc, f.id
    limit 500
  ) f;
  select coalesce(array_agg(distinct f.call_id), '{}') into calls
  from phi.twilio_recording_fetches f where f.id = any (found_ids);
  select coalesce(array_agg(distinct c.patient_id), '{}') into patients
  from phi.calls c
  where c.id = any (calls) and c.patient_id is not null;
  perform audit.record('view', 'twilio_recording', calls, patients, 'success',
    cardinality(found_ids));
  return query
    select f.id, f.call_id, f.recording_sid, f.status, f.attempts, f.last_error,
      f.created_at, f.updated_at,
      exists (
        select 1 from phi.calls c
        where c.id = f.call_id and c.practice_id = f.practice_id
      ),
      exists (
        select 1 from phi.call_media m
        where m.call_id = f.call_id and m.practice_id = f.practice_id
          and m.kind = 'recording' and m.deleted_at is null
      )
    from phi.twilio_recording_fetches f
    where f.id = any (found_ids)
    order by f.updated_at desc, f.id;
end
$$;

revoke all on function phi_api.twilio_fetches_for_review(timestamptz, interval)
  from public;
grant execute on function phi_api.twilio_fetches_for_review(timestamptz, interval)
  to perpetua_service;
