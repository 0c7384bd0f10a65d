-- Every lifecycle fact of an item is remembered with its event time, whatever it changed
-- when it arrived, so any arrival order of the same deliveries ends in the same state: the
-- latest pause and the latest resume of each item.
alter table order_items add column paused_at bigint;
alter table order_items add column resumed_at bigint;
