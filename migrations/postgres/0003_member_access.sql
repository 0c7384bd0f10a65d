-- Member sign-in: passwords (argon2id PHC strings), single-use invitations to set one, and
-- sessions. Tokens are stored as SHA-256 digests only.

alter table members add column password_hash text;

create table invitations (
    token_hash  text primary key,
    app_id      uuid not null,
    member_id   uuid not null,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint invitations_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);

create table member_sessions (
    token_hash  text primary key,
    app_id      uuid not null,
    member_id   uuid not null,
    expires_at  timestamptz not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint member_sessions_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);
create index member_sessions_expires_at_idx on member_sessions (expires_at);
