-- The event time of an item's latest payment fact (purchase, renewal, failed rebill), so a
-- late, older one cannot overrule a newer one. Same meaning as
-- migrations/postgres/0004_payment_time.sql.
alter table order_items add column payment_at integer;
