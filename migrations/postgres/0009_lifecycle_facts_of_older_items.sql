-- Items written before their lifecycle facts were kept (0008) carry none, yet their status
-- says one: a paused item was paused at its status time, and an active one stands as if
-- resumed then, so that an older pause arriving late changes nothing, as it never did.
update order_items set paused_at = status_at where status = 'paused' and paused_at is null;
update order_items set resumed_at = status_at
    where status = 'active' and resumed_at is null and paused_at is null;
