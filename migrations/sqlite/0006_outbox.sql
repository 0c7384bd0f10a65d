-- The outbox and members' settings. Same meaning as migrations/postgres/0006_outbox.sql.
create table outbox (
    id               text primary key,
    app_id           text not null,
    member_id        text not null,
    kind             text not null
        check (kind in ('welcome', 'invitation', 'magic_link', 'password_reset')),
    to_email         text not null,
    once_key         text,
    status           text not null default 'queued' check (status in ('queued', 'sent', 'failed')),
    attempts         integer not null default 0,
    last_error       text,
    next_attempt_at  text not null,
    claim_id         text,
    claimed_until    text,
    created_at       text not null,
    sent_at          text,
    constraint outbox_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);
create unique index outbox_once_key on outbox (app_id, member_id, once_key)
    where once_key is not null;
create index outbox_due_idx on outbox (next_attempt_at) where status = 'queued';
create index outbox_app_idx on outbox (app_id, id);

create table member_settings (
    app_id                      text primary key references apps (id) on delete cascade,
    member_url                  text,
    sender_name                 text,
    reply_to                    text,
    welcome_email               text not null default 'set_password'
        check (welcome_email in ('set_password', 'magic_link', 'off')),
    welcome_for_test_purchases  integer not null default 0,
    subject_template            text,
    body_template               text,
    cors_origins                text not null default '[]',
    updated_at                  text not null
);

alter table invitations add column purpose text not null default 'set_password'
    check (purpose in ('set_password', 'magic_link', 'password_reset'));
alter table invitations add column message_id text;
