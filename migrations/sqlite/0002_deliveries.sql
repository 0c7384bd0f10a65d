-- Members, what they bought (order items) and the grants it gives, and the activity log of
-- ThriveCart deliveries with the fingerprints that make each one count once. Same meaning as
-- migrations/postgres/0002_deliveries.sql.

create table members (
    id                      text primary key,
    app_id                  text not null references apps (id) on delete cascade,
    email                   text not null,
    name                    text,
    thrivecart_customer_id  text,
    test                    integer not null default 0,
    created_at              text not null,
    updated_at              text not null,
    constraint members_app_email_key unique (app_id, email),
    constraint members_app_id_id_key unique (app_id, id)
);

create table order_items (
    app_id           text not null references apps (id) on delete cascade,
    order_id         text not null,
    product          text not null,
    member_id        text,
    status           text not null check (status in ('active', 'paused', 'revoked')),
    status_at        integer not null,
    past_due         integer not null default 0,
    revoke_at        integer,
    subscription_id  text,
    test             integer not null default 0,
    created_at       text not null,
    updated_at       text not null,
    primary key (app_id, order_id, product),
    constraint order_items_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade
);
create index order_items_revoke_at_idx on order_items (revoke_at) where revoke_at is not null;

create table grants (
    id               text primary key,
    app_id           text not null references apps (id) on delete cascade,
    member_id        text not null,
    access_level_id  text not null,
    source           text not null check (source in ('thrivecart', 'manual')),
    order_id         text,
    product          text,
    status           text not null check (status in ('active', 'paused', 'revoked')),
    past_due         integer not null default 0,
    test             integer not null default 0,
    created_at       text not null,
    updated_at       text not null,
    constraint grants_member_fkey foreign key (app_id, member_id)
        references members (app_id, id) on delete cascade,
    constraint grants_access_level_fkey foreign key (app_id, access_level_id)
        references access_levels (app_id, id) on delete cascade,
    constraint grants_order_item_level_key unique (app_id, order_id, product, access_level_id)
);
create index grants_member_idx on grants (app_id, member_id);
create index grants_level_status_idx on grants (app_id, access_level_id, status);

create table deliveries (
    id              text primary key,
    app_id          text not null references apps (id) on delete cascade,
    received_at     text not null,
    event           text,
    mode            text,
    status          text not null check (status in ('applied', 'duplicate', 'unmapped',
                        'ignored', 'rejected', 'invalid', 'failed', 'ping')),
    order_id        text,
    customer_email  text,
    products        text not null default '[]',
    message         text not null,
    verified        integer not null,
    payload         text,
    effects         text not null default '[]',
    replay_of       text,
    created_at      text not null,
    updated_at      text not null
);
create index deliveries_app_id_idx on deliveries (app_id, id desc);
create index deliveries_received_at_idx on deliveries (received_at);

create table delivery_fingerprints (
    app_id       text not null references apps (id) on delete cascade,
    fingerprint  text not null,
    delivery_id  text not null,
    created_at   text not null,
    primary key (app_id, fingerprint)
);
create index delivery_fingerprints_created_at_idx on delivery_fingerprints (created_at);
