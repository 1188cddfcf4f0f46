-- 5: the delivery engine's indexes cover only the rows each question is
-- about: pending rows by subscription and due time (claims), in-flight rows
-- by lease expiry (rescue, renewal), dead letters by subscription (replay,
-- listings). A claim or an outcome then touches one or two small indexes
-- instead of rewriting two large ones, and delivered rows, the bulk of the
-- table, are in none of them (Counts derives them from the total).
DROP INDEX deliveries_due;
DROP INDEX deliveries_lease;
CREATE INDEX deliveries_due ON deliveries (subscription, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE state = 'in_flight';
CREATE INDEX deliveries_dead ON deliveries (subscription) WHERE state = 'dead';
