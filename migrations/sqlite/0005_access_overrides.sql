-- Admins' overrides of a member's access. Same meaning as
-- migrations/postgres/0005_access_overrides.sql.
create table access_overrides (
    app_id           text not null,
    member_id        text not null,
    access_level_id  text not null,
    status           text not null check (status in ('revoked', 'paused')),
    reason           text,
    created_at       text not null,
    updated_at       text not null,
    constraint access_overrides_pkey primary key (app_id, member_id, access_level_id),
    constraint access_overrides_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade,
    constraint access_overrides_access_level_fkey foreign key (app_id, access_level_id)
        references access_levels (app_id, id) on delete cascade
);
