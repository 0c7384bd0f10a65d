-- Member sign-in: passwords (argon2id PHC strings), single-use invitations to set one, and
-- sessions. Tokens are stored as SHA-256 digests only. Same meaning as
-- migrations/postgres/0003_member_access.sql.

alter table members add column password_hash text;

create table invitations (
    token_hash  text primary key,
    app_id      text not null,
    member_id   text not null,
    expires_at  text not null,
    used_at     text,
    created_at  text not null,
    updated_at  text not null,
    constraint invitations_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);

create table member_sessions (
    token_hash  text primary key,
    app_id      text not null,
    member_id   text not null,
    expires_at  text not null,
    created_at  text not null,
    updated_at  text not null,
    constraint member_sessions_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);
create index member_sessions_expires_at_idx on member_sessions (expires_at);
