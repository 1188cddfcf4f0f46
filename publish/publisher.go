package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/telemetry"
)

// Outbox is the part of the store the publisher delivers from: claims
// under leases, outcomes, rescue of expired leases, replay and pauses.
type Outbox interface {
	ClaimDue(ctx context.Context, owner, subscription string, now, leaseUntil time.Time, limit int) ([]store.Delivery, error)
	Complete(ctx context.Context, owner string, cs ...store.Completion) (stale []int64, err error)
	Release(ctx context.Context, owner string, ids ...int64) error
	RenewLeases(ctx context.Context, owner string, now, until time.Time) (int, error)
	Rescue(ctx context.Context, now time.Time) (int, error)
	Replay(ctx context.Context, f store.Filter, now time.Time) (int, error)
	Pause(ctx context.Context, subscription, reason string, at time.Time) error
	Resume(ctx context.Context, subscription string) error
	Paused(ctx context.Context) (map[string]string, error)
}

// Renderer makes the body of one attempt from a stored event and, for an
// event that references a file, the DownloadURL minted for this attempt
// (empty otherwise). Each event contract has one (dataexport.Render); the
// engine itself knows no event's shape.
type Renderer func(ev store.Event, downloadURL string, expires time.Time) ([]byte, error)

// storedBody is the default Renderer: the body as stored.
func storedBody(ev store.Event, _ string, _ time.Time) ([]byte, error) { return ev.Body, nil }

// URLMinter mints a download link to an artifact's file, valid until
// expires: files.Signer for files served by exportbridge, files.S3 for
// presigned object-store links.
type URLMinter interface {
	Link(ctx context.Context, a store.Artifact, expires time.Time) (string, error)
	TTL() time.Duration
}

// Observer is told every attempt's outcome and every change of a
// subscription's circuit (metrics); latency is from the commit of the event
// to this attempt; traceID is the attempt's trace ("" when not traced), for
// exemplars.
type Observer interface {
	Attempted(subscription, outcome string, latency time.Duration, traceID string)
	CircuitChanged(subscription, state string)
}

// Config tunes the publisher. Zero values take the defaults shown.
type Config struct {
	// Owner names this process instance on the delivery leases it takes.
	// Every process sharing a store needs its own. Default: a random id.
	Owner string
	// PollInterval is how often each subscription looks for due deliveries
	// when nothing wakes it (retries coming due). Default 250ms.
	PollInterval time.Duration
	// LeaseTTL is how long a claimed delivery stays leased without renewal;
	// the publisher renews its leases every LeaseTTL/3 while attempts run,
	// so only a process that died or stalled loses them, and any process
	// rescues them once expired. Default 30s.
	LeaseTTL time.Duration
	// RescueInterval is how often expired leases are returned to pending.
	// Default LeaseTTL/2.
	RescueInterval time.Duration
	// RecordLinger is how long outcomes are gathered after the first one
	// before they are written together: longer means fewer, larger store
	// transactions under load and a later "delivered" in the store (never a
	// later delivery). Default 5ms.
	RecordLinger time.Duration
}

func (c Config) withDefaults() Config {
	if c.Owner == "" {
		c.Owner = "publisher-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if c.PollInterval == 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.RescueInterval == 0 {
		c.RescueInterval = c.LeaseTTL / 2
	}
	if c.RecordLinger == 0 {
		c.RecordLinger = 5 * time.Millisecond
	}
	return c
}

// ErrStopDeadline: Stop's deadline passed with attempts in flight; they were
// cut short and returned to pending (nothing is lost; they are sent again).
var ErrStopDeadline = errors.New("publish: shutdown deadline passed; unfinished attempts returned to pending")

// Publisher delivers committed events: one dispatcher per subscription
// claims due deliveries (at most MaxInFlight at a time, so a slow or dead
// target only ever holds up itself), makes one attempt each, and records
// the outcome, which is the retry state that survives restarts.
type Publisher struct {
	cfg    Config
	st     Outbox
	reg    *Registry
	sender *Sender
	minter URLMinter
	obs    Observer
	render Renderer
	log    zerolog.Logger
	now    func() time.Time

	// dispatchers and breakers are per subscription name, following reg;
	// guarded by mu.
	dispatchers map[string]*dispatcher
	breakers    map[string]*breaker
	beforeSend  func()
	tracer      trace.Tracer

	pauseMu   sync.Mutex
	pausedSet map[string]bool // cached Paused, read at pausedAt
	pausedAt  time.Time
	record    chan completion // attempts' outcomes, written in batches
	recorded  chan struct{}   // closed when the recorder has stopped

	mu       sync.Mutex
	started  bool
	stopOnce sync.Once
	cancel   context.CancelFunc // stops claiming
	abort    context.CancelFunc // cuts attempts short at the shutdown deadline
	loops    sync.WaitGroup     // dispatchers and the rescuer
	renewer  sync.WaitGroup     // the lease renewer, which outlives them until attempts end
	inflight sync.WaitGroup
}

// Option adjusts a Publisher.
type Option func(*Publisher)

// WithObserver reports attempts to o.
func WithObserver(o Observer) Option { return func(p *Publisher) { p.obs = o } }

// WithRenderer renders every attempt's body with r.
func WithRenderer(r Renderer) Option { return func(p *Publisher) { p.render = r } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(p *Publisher) { p.now = now } }

// WithAttemptHook calls hook just before each attempt is sent (the crash
// tests' failpoint).
func WithAttemptHook(hook func()) Option { return func(p *Publisher) { p.beforeSend = hook } }

// WithTracerProvider traces each attempt as a span "delivery.attempt" in
// the trace of the work that made the event (its stored traceparent),
// linked to it (default: none).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(p *Publisher) { p.tracer = tp.Tracer("github.com/exportbridge/exportbridge/publish") }
}

// dispatcher is one subscription's claim-and-send loop.
type dispatcher struct {
	sub    *Subscription
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a publisher for the subscriptions in reg, following its
// changes once started.
func New(cfg Config, st Outbox, reg *Registry, minter URLMinter, log zerolog.Logger, opts ...Option) *Publisher {
	p := &Publisher{cfg: cfg.withDefaults(), st: st, reg: reg, sender: NewSender(), minter: minter,
		render: storedBody, log: log.With().Str("component", "publish").Logger(), now: time.Now,
		dispatchers: map[string]*dispatcher{}, breakers: map[string]*breaker{}, record: make(chan completion, 1024), recorded: make(chan struct{}),
		tracer: noop.NewTracerProvider().Tracer("")}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Circuits returns each subscription's circuit breaker state.
func (p *Publisher) Circuits() map[string]BreakerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]BreakerState, len(p.breakers))
	for name, b := range p.breakers {
		out[name] = b.snapshot()
	}
	return out
}

// Dispatching returns the names of the subscriptions being dispatched now,
// sorted.
func (p *Publisher) Dispatching() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.dispatchers))
	for name := range p.dispatchers {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// breaker returns name's circuit breaker, made on first use; it outlives
// changes of the subscription's other settings.
func (p *Publisher) breaker(s *Subscription) *breaker {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.breakers[s.Name]
	if !ok {
		b = newBreaker(BreakerConfig{Threshold: s.BreakerThreshold, MinInterval: s.BreakerInterval, MaxInterval: s.BreakerMaxInterval})
		p.breakers[s.Name] = b
	}
	return b
}

// follow starts and stops dispatchers as the registry changes, until ctx
// ends.
func (p *Publisher) follow(ctx, attemptCtx context.Context) {
	defer p.loops.Done()
	changes := p.reg.changes()
	p.reconcile(ctx, attemptCtx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			p.reconcile(ctx, attemptCtx)
		}
	}
}

// reconcile makes the running dispatchers match the registry: removed or
// changed subscriptions' dispatchers stop (attempts they started finish),
// new or changed ones start. A removed subscription's deliveries stay in the
// store, pending, until it comes back or they are replayed elsewhere.
func (p *Publisher) reconcile(ctx, attemptCtx context.Context) {
	want := map[string]*Subscription{}
	for _, s := range p.reg.Subscriptions() {
		want[s.Name] = s
	}
	p.mu.Lock()
	var stopped []*dispatcher
	for name, d := range p.dispatchers {
		if s, ok := want[name]; !ok || s != d.sub {
			d.cancel()
			stopped = append(stopped, d)
			delete(p.dispatchers, name)
			if !ok {
				delete(p.breakers, name)
			}
		}
	}
	p.mu.Unlock()
	for _, d := range stopped {
		<-d.done
		p.log.Info().Str("subscription", d.sub.Name).Msg("subscription removed or changed: its dispatcher stopped")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, s := range want {
		if _, running := p.dispatchers[name]; running {
			continue
		}
		dctx, cancel := context.WithCancel(ctx)
		d := &dispatcher{sub: s, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		p.dispatchers[name] = d
		p.loops.Add(1)
		go p.dispatch(dctx, attemptCtx, d)
	}
}

// Start launches the dispatchers, the lease renewer and the rescuer. It
// first returns to pending the deliveries whose leases expired: those of a
// process that died. A live process's leases are never taken.
func (p *Publisher) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("publish: already started")
	}
	p.started = true
	p.mu.Unlock()
	if n, err := p.st.Rescue(ctx, p.now()); err != nil {
		return fmt.Errorf("publish: rescuing deliveries: %w", err)
	} else if n > 0 {
		p.log.Info().Int("deliveries", n).Msg("resuming deliveries whose leases expired (their process stopped)")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	attemptCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	p.mu.Lock()
	p.cancel, p.abort = cancel, abort
	p.mu.Unlock()
	go p.recorder()
	p.loops.Add(2)
	go p.follow(runCtx, attemptCtx)
	go p.rescueLoop(runCtx)
	p.renewer.Add(1)
	go p.renewLoop(attemptCtx)
	return nil
}

// renewLoop extends this process's delivery leases every LeaseTTL/3 while it
// runs, so attempts of any length keep their rows. It stops with the
// attempts (at Stop, once they are done or cut short).
func (p *Publisher) renewLoop(ctx context.Context) {
	defer p.renewer.Done()
	every(ctx, p.cfg.LeaseTTL/3, func() {
		now := p.now()
		if _, err := p.st.RenewLeases(ctx, p.cfg.Owner, now, now.Add(p.cfg.LeaseTTL)); err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("renewing delivery leases failed; attempts past their lease will be sent again by whoever rescues them")
		}
	})
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Stop stops claiming, lets attempts in flight finish until ctx ends, then
// cuts the rest short and returns them to pending. It is idempotent.
func (p *Publisher) Stop(ctx context.Context) error {
	p.mu.Lock()
	cancel, abort := p.cancel, p.abort
	p.mu.Unlock()
	if cancel == nil { // never started, or its start failed
		return nil
	}
	var err error
	p.stopOnce.Do(func() {
		cancel()
		p.loops.Wait()
		done := make(chan struct{})
		go func() { p.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			abort() // attempts see a cancelled context and release their rows
			<-done
			err = ErrStopDeadline
		}
		abort()
		p.renewer.Wait()
		close(p.record) // every attempt has handed in its outcome
		<-p.recorded
	})
	return err
}

// completion is an outcome waiting to be written.
type completion struct {
	c            store.Completion
	subscription string
	eventID      string
}

// recorder writes outcomes in batches: everything waiting, and whatever
// arrives within RecordLinger of the first, in one transaction (at most
// recordBatch). Attempts end one by one; a transaction per outcome, or per
// the two or three that happen to end together, is what held delivery back.
// An attempt hands its outcome over and frees its slot at once; its row
// stays leased to this process until the outcome is written, so a crash in
// between sends it again (at least once), never loses it.
func (p *Publisher) recorder() {
	defer close(p.recorded)
	const recordBatch = 512
	batch := make([]completion, 0, recordBatch)
	cs := make([]store.Completion, 0, recordBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for first := range p.record {
		batch = append(batch[:0], first)
		linger.Reset(p.cfg.RecordLinger)
	collect:
		for len(batch) < recordBatch {
			select {
			case c, ok := <-p.record:
				if !ok {
					break collect
				}
				batch = append(batch, c)
			case <-linger.C:
				break collect
			}
		}
		linger.Stop()
		cs = cs[:0]
		for _, c := range batch {
			cs = append(cs, c.c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stale, err := p.st.Complete(ctx, p.cfg.Owner, cs...)
		cancel()
		if err != nil {
			p.log.Error().Err(err).Int("outcomes", len(batch)).
				Msg("recording delivery outcomes failed; their leases will expire and they will be sent again")
			continue
		}
		for _, id := range stale {
			for _, c := range batch {
				if c.c.ID == id {
					p.log.Warn().Str("subscription", c.subscription).Str("event_id", c.eventID).Int64("delivery_id", id).
						Msg("the delivery's lease was taken back before its outcome was recorded; whoever holds it now sends it again")
				}
			}
		}
	}
}

// paused returns the paused subscriptions, read from the store at most once
// per PollInterval: every claim asked before, one read per claim. A pause
// or resume by this process is seen at once (it drops the cache); one by
// another process within PollInterval.
func (p *Publisher) paused(ctx context.Context) (map[string]bool, error) {
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	now := time.Now()
	if p.pausedSet != nil && now.Sub(p.pausedAt) < p.cfg.PollInterval {
		return p.pausedSet, nil
	}
	m, err := p.st.Paused(ctx)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(m))
	for name := range m {
		set[name] = true
	}
	p.pausedSet, p.pausedAt = set, now
	return set, nil
}

// forgetPaused drops the cached pause set.
func (p *Publisher) forgetPaused() {
	p.pauseMu.Lock()
	p.pausedSet = nil
	p.pauseMu.Unlock()
}

// Notify wakes every dispatcher: new deliveries were committed.
func (p *Publisher) Notify() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.dispatchers {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// Replay returns dead letters (or the deliveries f selects) to pending and
// wakes the dispatchers. Replayed events keep their EventId.
func (p *Publisher) Replay(ctx context.Context, f store.Filter) (int, error) {
	n, err := p.st.Replay(ctx, f, p.now())
	if err == nil && n > 0 {
		p.Notify()
	}
	return n, err
}

// Pause stops a subscription's attempts (in every process sharing the
// store, within their poll interval) until Resume; its deliveries wait.
func (p *Publisher) Pause(ctx context.Context, subscription, reason string) error {
	if err := p.st.Pause(ctx, subscription, reason, p.now()); err != nil {
		return err
	}
	p.forgetPaused()
	return nil
}

// Resume un-pauses a subscription (after a 410) and wakes it.
func (p *Publisher) Resume(ctx context.Context, subscription string) error {
	if err := p.st.Resume(ctx, subscription); err != nil {
		return err
	}
	p.forgetPaused()
	p.Notify()
	return nil
}

func (p *Publisher) rescueLoop(ctx context.Context) {
	defer p.loops.Done()
	every(ctx, p.cfg.RescueInterval, func() {
		if n, err := p.st.Rescue(ctx, p.now()); err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("rescuing expired leases failed")
		} else if n > 0 {
			p.log.Warn().Int("deliveries", n).Msg("returned deliveries with expired leases to pending")
			p.Notify()
		}
	})
}

// claimed is a delivery claimed by a dispatcher and not yet attempted.
type claimed struct {
	d     store.Delivery
	sub   *Subscription
	probe bool // the one attempt an open circuit let out
}

// dispatch claims and sends the deliveries of one subscription. Claims run
// ahead of the attempts: besides the MaxInFlight rows being sent it holds up
// to 3×MaxInFlight more, claimed, waiting for a slot, and claims again once
// half of the 4×MaxInFlight is free. A claim is a store transaction, so
// claiming many rows at a time instead of one per finished attempt is what
// lets delivery keep up. Rows held ahead cost little: the renewer keeps
// their leases, and they go back to pending unattempted when the circuit
// opens or the dispatcher stops.
func (p *Publisher) dispatch(ctx, attemptCtx context.Context, d *dispatcher) {
	defer p.loops.Done()
	defer close(d.done)
	s := d.sub
	log := p.log.With().Str("subscription", s.Name).Logger()
	slots := make(chan struct{}, s.MaxInFlight)
	released := make(chan struct{}, 1) // an attempt ended: a slot is free
	var queue []claimed
	start := func(c claimed) {
		p.inflight.Add(1)
		go func() {
			defer func() {
				<-slots
				select {
				case released <- struct{}{}:
				default:
				}
				p.inflight.Done()
			}()
			p.attempt(attemptCtx, s, c.d, c.probe, log)
		}()
	}
	capacity := 4 * s.MaxInFlight // rows held: sending and waiting
	timer := time.NewTimer(0)
	defer timer.Stop()
	br := p.breaker(s)
	pace := pacer{perSecond: s.MaxPerSecond}
	for {
		// Start what the free slots allow, while the circuit lets them out:
		// rows claimed before it opened go back unattempted (a probe, claimed
		// while it was open, goes out).
		for len(queue) > 0 && len(slots) < cap(slots) && ctx.Err() == nil {
			if !queue[0].probe && !br.closed() {
				queue = p.release(ctx, queue, false, log)
				break
			}
			// Paused (a 410, an operator) since they were claimed: back
			// they go, unsent.
			if paused, err := p.paused(ctx); err == nil && paused[s.Name] {
				queue = p.release(ctx, queue, true, log)
				break
			}
			if !pace.wait(ctx) {
				break
			}
			slots <- struct{}{}
			start(queue[0])
			queue = queue[1:]
		}
		// A finished attempt claims only once half the capacity is free;
		// a commit, a wake-up or the poll timer claims whatever is free, so a
		// quiet subscription still sends at once.
		min := 1
		select {
		case <-ctx.Done():
			// Rows claimed and not started go back for whoever runs next,
			// not left leased to a process that stops.
			p.release(ctx, queue, true, log)
			return
		case <-timer.C:
		case <-d.wake:
		case <-released:
			min = capacity / 2
		}
		if room := capacity - len(queue) - len(slots); room >= max(min, 1) {
			queue = append(queue, p.claim(ctx, s, room, log)...)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(p.cfg.PollInterval)
	}
}

// release hands claimed, unattempted rows back to pending and returns the
// rest of the queue: the probe among them unless all (then the circuit
// waits for its next probe).
func (p *Publisher) release(ctx context.Context, queue []claimed, all bool, log zerolog.Logger) []claimed {
	var ids []int64
	var keep []claimed
	for _, c := range queue {
		switch {
		case c.probe && !all:
			keep = append(keep, c)
			continue
		case c.probe:
			p.breaker(c.sub).unused()
		}
		ids = append(ids, c.d.ID)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.st.Release(rctx, p.cfg.Owner, ids...); err != nil {
		log.Error().Err(err).Int("deliveries", len(ids)).Msg("returning claimed deliveries failed; they are sent once their leases expire")
	}
	return keep
}

// claim claims up to room due deliveries of s, as many as its circuit
// allows.
func (p *Publisher) claim(ctx context.Context, s *Subscription, room int, log zerolog.Logger) []claimed {
	if ctx.Err() != nil {
		return nil // stopping: a wake-up raced the stop
	}
	paused, err := p.paused(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Error().Err(err).Msg("reading paused subscriptions failed")
		}
		return nil
	}
	if paused[s.Name] {
		return nil
	}
	now := p.now()
	br := p.breaker(s)
	n, probe := br.allow(now, room)
	if n == 0 {
		return nil // the circuit is open: due deliveries wait without spending attempts
	}
	// Not cancellable: a claim that reached the store is returned and
	// attempted, never left leased to a process that stops.
	ds, err := p.st.ClaimDue(context.WithoutCancel(ctx), p.cfg.Owner, s.Name, now, now.Add(p.cfg.LeaseTTL), n)
	if err != nil || len(ds) == 0 {
		if probe {
			br.unused()
		}
		if err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("claiming deliveries failed")
		}
		return nil
	}
	out := make([]claimed, len(ds))
	for i, d := range ds {
		out[i] = claimed{d: d, sub: s, probe: probe}
	}
	return out
}

// circuit records an attempt's result in the subscription's breaker and
// reports a change of state once.
func (p *Publisher) circuit(s *Subscription, ok, probe bool, now time.Time, status int, log zerolog.Logger) {
	name := s.Name
	br := p.breaker(s)
	switch br.record(ok, probe, now) {
	case CircuitOpen:
		st := br.snapshot()
		log.Warn().Int("consecutive_failures", st.ConsecutiveFailures).Int("last_status", status).Time("next_probe_at", st.NextProbeAt).
			Msg("circuit open: the target keeps failing; its deliveries wait while probes go out")
		if p.obs != nil {
			p.obs.CircuitChanged(name, CircuitOpen)
		}
	case CircuitClosed:
		log.Info().Msg("circuit closed: the target answers again; its deliveries resume")
		if p.obs != nil {
			p.obs.CircuitChanged(name, CircuitClosed)
		}
		p.Notify()
	}
}

// attempt sends one claimed delivery and records the outcome; probe says
// it is the one attempt an open circuit let out.
func (p *Publisher) attempt(ctx context.Context, s *Subscription, d store.Delivery, probe bool, log zerolog.Logger) {
	now := p.now()
	url, expires := "", time.Time{}
	if d.Artifact != nil && d.Artifact.DeletedAt.IsZero() {
		expires = now.Add(p.minter.TTL())
		var lerr error
		if url, lerr = p.minter.Link(ctx, *d.Artifact, expires); lerr != nil {
			// The event goes out without a link rather than not at all; the
			// receiver can ask for a replay.
			log.Error().Err(lerr).Str("artifact", d.Artifact.ID).Msg("minting a download link failed")
			url, expires = "", time.Time{}
		}
	}
	body, err := p.render(d.Event, url, expires)
	var resp Response
	spanCtx, span := p.startAttempt(ctx, s, d)
	log = telemetry.WithTrace(log, span)
	if err == nil {
		if p.beforeSend != nil {
			p.beforeSend()
		}
		req := Request{Sub: s, EventID: d.Event.ID, CEType: d.Event.CEType, Source: d.Event.Source, Subject: d.Event.Subject,
			Time: d.Event.CreatedAt, Attempt: d.Attempt, Body: body, Now: now}
		req.TraceParent, req.TraceState = traceContextOf(spanCtx, d.Event)
		resp, err = p.sender.Send(spanCtx, req)
	}
	status := resp.Status
	// Record the outcome even while shutting down: the attempt happened.
	recCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	end := p.now()
	var o store.Outcome
	if ctx.Err() != nil && err != nil {
		// Cut short by shutdown: release the row; the attempt does not count
		// as a failure of the target.
		o = store.Outcome{State: store.StatePending, NextAt: end, Error: "interrupted by shutdown", At: end}
	} else {
		o = nextOutcome(s.Retry, s.MaxRetryAfter, d.Attempt, status, err, end)
	}
	var se *SendError
	isSendErr := errors.As(err, &se)
	if isSendErr && se.Gone {
		// Paused before the dead letter is recorded: whoever sees the dead
		// letter sees the pause too.
		if perr := p.st.Pause(recCtx, s.Name, fmt.Sprintf("HTTP 410 Gone for event %s", d.Event.ID), end); perr != nil {
			log.Error().Err(perr).Msg("pausing subscription failed")
		}
		p.forgetPaused()
		log.Warn().Str("event_id", d.Event.ID).Msg("subscription answered 410 Gone: paused until resumed")
	}
	attempt := &store.Attempt{DeliveryID: d.ID, Number: d.Attempt, StartedAt: now, Duration: end.Sub(now), Status: status, Response: resp.Excerpt}
	if err != nil {
		attempt.Error = o.Error
		if attempt.Error == "" {
			attempt.Error = redact.String(err.Error())
		}
	}
	p.record <- completion{c: store.Completion{ID: d.ID, Outcome: o, Attempt: attempt}, subscription: s.Name, eventID: d.Event.ID}
	if ctx.Err() == nil && (err == nil || isSendErr) {
		p.circuit(s, err == nil || !se.Retryable, probe, end, status, log)
	}
	label := outcomeLabel(o.State)
	endAttempt(span, status, end.Sub(now), label, err)
	if p.obs != nil {
		traceID := "" // the span has ended: its context says whether it was kept
		if sc := span.SpanContext(); sc.IsValid() && sc.IsSampled() {
			traceID = sc.TraceID().String()
		}
		p.obs.Attempted(s.Name, label, end.Sub(d.CreatedAt), traceID)
	}
	ev := log.Debug()
	switch label {
	case OutcomeRetry:
		ev = log.Info().Time("next_attempt_at", o.NextAt)
	case OutcomeDead:
		ev = log.Warn()
	}
	ev.Str("event_id", d.Event.ID).Int64("delivery_id", d.ID).Int("attempt", d.Attempt).Int("status", o.Status).
		Str("outcome", label).Str("error", o.Error).Msg("delivery attempt")
}
