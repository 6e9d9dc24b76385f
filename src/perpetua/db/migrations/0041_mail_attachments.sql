-- Attachments to outbox messages (the executed BAA, the certificate of
-- destruction). The file is never stored in plaintext: the service encrypts it
-- under the practice's `documents` class key (Perpetua's segmented AEAD stream,
-- magic "PPSB") before the row is written, and the check below refuses anything
-- that is not such a stream. The wrapped data key sits beside it; the class key
-- that unwraps it lives in <data-dir>/keys, never in the database. Once the
-- message is delivered the ciphertext is erased, like the message body.

create table app.mail_attachments (
  id uuid primary key,
  message_id uuid not null references app.mail_outbox (id),
  practice_id uuid not null references app.practices (id),
  position smallint not null check (position between 0 and 9),
  filename text not null check (filename ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
  content_type text not null
    check (content_type ~ '^[a-z]+/[a-z0-9.+-]{1,60}$'),
  size_bytes integer not null check (size_bytes between 1 and 20000000),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  wrapped_key bytea not null,
  ciphertext bytea check (substring(ciphertext from 1 for 4) = '\x50505342'::bytea),
  created_at timestamptz not null,
  unique (message_id, position)
);
create index mail_attachments_message on app.mail_attachments (message_id);

alter table app.mail_attachments enable row level security;
alter table app.mail_attachments force row level security;

-- Whoever may queue a message for the practice may attach to it, in the same
-- transaction; the attachment names the practice its key belongs to.
create policy mail_attachments_enqueue on app.mail_attachments for insert
  with check (
    (select perpetua.actor_kind()) is not null
    and practice_id = (select perpetua.practice_id())
    and ciphertext is not null
  );
-- The delivery job reads and erases; owners and managers see what was attached
-- (names and sizes) next to the message's delivery status.
create policy mail_attachments_visible on app.mail_attachments for select
  using (
    (select perpetua.actor_kind()) = 'system'
    or (
      practice_id = (select perpetua.practice_id())
      and (select perpetua.practice_role()) in ('owner', 'manager')
    )
  );
create policy mail_attachments_erase on app.mail_attachments for update
  using ((select perpetua.actor_kind()) = 'system')
  with check (ciphertext is null);

grant select, insert on app.mail_attachments to perpetua_service;
grant update (ciphertext) on app.mail_attachments to perpetua_service;
