-- Larder's foundation: the operator, apps, API keys, access levels, the ThriveCart
-- integration of each app and its product mappings.

create table operator_tokens (
    id          smallint primary key default 1 check (id = 1),
    token_hash  text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table apps (
    id          uuid primary key,
    name        text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table api_keys (
    id          uuid primary key,
    app_id      uuid not null references apps (id) on delete cascade,
    name        text not null,
    key_hash    text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint api_keys_key_hash_key unique (key_hash)
);
create index api_keys_app_id_idx on api_keys (app_id, id);

create table access_levels (
    id          uuid primary key,
    app_id      uuid not null references apps (id) on delete cascade,
    name        text not null,
    -- the name as compared for uniqueness (lowercased by the application, the same way on
    -- every backend)
    name_key    text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    -- (app_id, id) is referenced by mappings so a mapping can only name its own app's level.
    constraint access_levels_app_id_id_key unique (app_id, id)
);
create unique index access_levels_app_name_key on access_levels (app_id, name_key);

create table thrivecart_integrations (
    app_id            uuid primary key references apps (id) on delete cascade,
    enabled           boolean not null default false,
    webhook_token     text,
    secret_word_hash  text,
    test_mode         text not null default 'process' check (test_mode in ('process', 'ignore')),
    cancellation      text not null default 'immediate'
                      check (cancellation in ('immediate', 'period_end')),
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint thrivecart_integrations_webhook_token_key unique (webhook_token)
);

create table product_mappings (
    id               uuid primary key,
    app_id           uuid not null references apps (id) on delete cascade,
    product          text not null,
    access_level_id  uuid not null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint product_mappings_access_level_fkey
        foreign key (app_id, access_level_id) references access_levels (app_id, id),
    constraint product_mappings_app_product_level_key
        unique (app_id, product, access_level_id)
);
create index product_mappings_access_level_idx on product_mappings (access_level_id);
