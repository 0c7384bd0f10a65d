-- The event time of an item's latest payment fact (purchase, renewal, failed rebill), so a
-- late, older one cannot overrule a newer one.
alter table order_items add column payment_at bigint;
