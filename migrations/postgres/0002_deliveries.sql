-- Members, what they bought (order items) and the grants it gives, and the activity log of
-- ThriveCart deliveries with the fingerprints that make each one count once.

create table members (
    id                      uuid primary key,
    app_id                  uuid not null references apps (id) on delete cascade,
    -- trimmed and lowercased by the application
    email                   text not null,
    name                    text,
    thrivecart_customer_id  text,
    test                    boolean not null default false,
    created_at              timestamptz not null default now(),
    updated_at              timestamptz not null default now(),
    constraint members_app_email_key unique (app_id, email),
    constraint members_app_id_id_key unique (app_id, id)
);

-- One row per purchased item of an order (order id + typed product key). Its status is the
-- status of every grant it gives; status_at is the event time (unix seconds) that set it.
create table order_items (
    app_id           uuid not null references apps (id) on delete cascade,
    order_id         text not null,
    product          text not null,
    member_id        uuid,
    status           text not null check (status in ('active', 'paused', 'revoked')),
    status_at        bigint not null,
    past_due         boolean not null default false,
    revoke_at        bigint,
    subscription_id  text,
    test             boolean not null default false,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint order_items_pkey primary key (app_id, order_id, product),
    constraint order_items_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);
create index order_items_revoke_at_idx on order_items (revoke_at) where revoke_at is not null;

create table grants (
    id               uuid primary key,
    app_id           uuid not null references apps (id) on delete cascade,
    member_id        uuid not null,
    access_level_id  uuid not null,
    source           text not null check (source in ('thrivecart', 'manual')),
    order_id         text,
    product          text,
    status           text not null check (status in ('active', 'paused', 'revoked')),
    past_due         boolean not null default false,
    test             boolean not null default false,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint grants_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade,
    -- Deleting a level is refused while a live grant uses it; revoked grants go with it.
    constraint grants_access_level_fkey foreign key (app_id, access_level_id)
        references access_levels (app_id, id) on delete cascade,
    constraint grants_order_item_level_key unique (app_id, order_id, product, access_level_id)
);
create index grants_member_idx on grants (app_id, member_id);
create index grants_level_status_idx on grants (app_id, access_level_id, status);

create table deliveries (
    id              uuid primary key,
    app_id          uuid not null references apps (id) on delete cascade,
    received_at     timestamptz not null,
    event           text,
    mode            text,
    status          text not null check (status in ('applied', 'duplicate', 'unmapped',
                        'ignored', 'rejected', 'invalid', 'failed', 'ping')),
    order_id        text,
    customer_email  text,
    products        jsonb not null default '[]',
    message         text not null,
    verified        boolean not null,
    payload         jsonb,
    effects         jsonb not null default '[]',
    replay_of       uuid,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index deliveries_app_id_idx on deliveries (app_id, id desc);
create index deliveries_received_at_idx on deliveries (received_at);

-- A delivery counts once: the first to insert its fingerprint applies it, the others are
-- duplicates. Inserted in the same transaction as the delivery's effects.
create table delivery_fingerprints (
    app_id       uuid not null references apps (id) on delete cascade,
    fingerprint  text not null,
    delivery_id  uuid not null,
    created_at   timestamptz not null default now(),
    constraint delivery_fingerprints_pkey primary key (app_id, fingerprint)
);
create index delivery_fingerprints_created_at_idx on delivery_fingerprints (created_at);
