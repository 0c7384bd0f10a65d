-- Larder's foundation: the operator, apps, API keys, access levels, the ThriveCart
-- integration of each app and its product mappings. Same meaning as
-- migrations/postgres/0001_foundation.sql; ids are TEXT (canonical UUIDs), times are
-- RFC 3339 UTC TEXT written by the application.

create table operator_tokens (
    id          integer primary key check (id = 1),
    token_hash  text not null,
    created_at  text not null,
    updated_at  text not null
);

create table apps (
    id          text primary key,
    name        text not null,
    created_at  text not null,
    updated_at  text not null
);

create table api_keys (
    id          text primary key,
    app_id      text not null references apps (id) on delete cascade,
    name        text not null,
    key_hash    text not null,
    created_at  text not null,
    updated_at  text not null,
    constraint api_keys_key_hash_key unique (key_hash)
);
create index api_keys_app_id_idx on api_keys (app_id, id);

create table access_levels (
    id          text primary key,
    app_id      text not null references apps (id) on delete cascade,
    name        text not null,
    -- the name as compared for uniqueness (lowercased by the application, the same way on
    -- every backend)
    name_key    text not null,
    created_at  text not null,
    updated_at  text not null,
    constraint access_levels_app_id_id_key unique (app_id, id)
);
create unique index access_levels_app_name_key on access_levels (app_id, name_key);

create table thrivecart_integrations (
    app_id            text primary key references apps (id) on delete cascade,
    enabled           integer not null default 0,
    webhook_token     text,
    secret_word_hash  text,
    test_mode         text not null default 'process' check (test_mode in ('process', 'ignore')),
    cancellation      text not null default 'immediate'
                      check (cancellation in ('immediate', 'period_end')),
    created_at        text not null,
    updated_at        text not null,
    constraint thrivecart_integrations_webhook_token_key unique (webhook_token)
);

create table product_mappings (
    id               text primary key,
    app_id           text not null references apps (id) on delete cascade,
    product          text not null,
    access_level_id  text not null,
    created_at       text not null,
    updated_at       text not null,
    constraint product_mappings_access_level_fkey
        foreign key (app_id, access_level_id) references access_levels (app_id, id),
    constraint product_mappings_app_product_level_key
        unique (app_id, product, access_level_id)
);
create index product_mappings_access_level_idx on product_mappings (access_level_id);
