-- Admins' overrides of a member's access: while one stands, the member lacks the level
-- whatever their purchases and manual grants say. Lifting it (deleting the row) gives back
-- what those give; the grants themselves are never changed by an override.
create table access_overrides (
    app_id           uuid not null,
    member_id        uuid not null,
    access_level_id  uuid not null,
    status           text not null check (status in ('revoked', 'paused')),
    reason           text,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint access_overrides_pkey primary key (app_id, member_id, access_level_id),
    constraint access_overrides_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade,
    constraint access_overrides_access_level_fkey foreign key (app_id, access_level_id)
        references access_levels (app_id, id) on delete cascade
);
