-- 9: the trace context (W3C traceparent and tracestate) of the work that made each
-- event, so its delivery attempts, later and maybe in another process,
-- join the same trace. Empty when nothing traced it.
ALTER TABLE events ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN trace_state TEXT NOT NULL DEFAULT '';
