-- 5: the delivery engine's indexes cover only the rows it looks for:
-- pending rows by subscription and due time (claims), in-flight rows by
-- lease expiry (rescue, renewal). A claim or an outcome then touches one
-- entry of each instead of rewriting both, and delivered rows, the bulk of
-- the table, leave them. deliveries_state serves counts and listings by
-- state.
DROP INDEX deliveries_due;
DROP INDEX deliveries_lease;
CREATE INDEX deliveries_due ON deliveries (subscription, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE state = 'in_flight';
CREATE INDEX deliveries_state ON deliveries (state, subscription);
