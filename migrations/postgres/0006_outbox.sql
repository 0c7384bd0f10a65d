-- What Larder must tell members (welcome emails, invitations, magic links, password
-- resets) is written here in the same transaction as the change that causes it, and sent
-- by a background sender in every process. Link tokens are never stored here: the sender
-- makes each one when it sends, and keeps only its hash (invitations).
create table outbox (
    id               uuid primary key,
    app_id           uuid not null,
    member_id        uuid not null,
    kind             text not null
        check (kind in ('welcome', 'invitation', 'magic_link', 'password_reset')),
    to_email         text not null,
    -- 'welcome' on the automatic welcome: at most one per member, however often a
    -- purchase is retried or replayed. Messages queued by hand have none.
    once_key         text,
    status           text not null default 'queued' check (status in ('queued', 'sent', 'failed')),
    attempts         integer not null default 0,
    last_error       text,
    next_attempt_at  timestamptz not null,
    -- A sender's claim: nobody else sends the message before claimed_until.
    claim_id         uuid,
    claimed_until    timestamptz,
    created_at       timestamptz not null,
    sent_at          timestamptz,
    constraint outbox_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);
create unique index outbox_once_key on outbox (app_id, member_id, once_key)
    where once_key is not null;
create index outbox_due_idx on outbox (next_attempt_at) where status = 'queued';
create index outbox_app_idx on outbox (app_id, id);

-- Per-app settings of what members receive and where their links go.
create table member_settings (
    app_id                      uuid primary key references apps (id) on delete cascade,
    member_url                  text,
    sender_name                 text,
    reply_to                    text,
    welcome_email               text not null default 'set_password'
        check (welcome_email in ('set_password', 'magic_link', 'off')),
    welcome_for_test_purchases  boolean not null default false,
    subject_template            text,
    body_template               text,
    cors_origins                jsonb not null default '[]',
    updated_at                  timestamptz not null default now()
);

-- Which message an invitation link was made for, and what it is for.
alter table invitations add column purpose text not null default 'set_password'
    check (purpose in ('set_password', 'magic_link', 'password_reset'));
alter table invitations add column message_id uuid;
