package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// EventReader reads committed events by ControlNumber (the store).
type EventReader interface {
	EventsAfter(ctx context.Context, after int64, limit int) ([]store.Event, error)
	LatestControlNumber(ctx context.Context) (int64, error)
}

// Broadcaster wakes every stream when events are committed. A stream reads
// the store, never the broadcast itself, so a wake-up that is missed or
// comes from nowhere costs a read, never an event.
type Broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewBroadcaster returns a broadcaster.
func NewBroadcaster() *Broadcaster { return &Broadcaster{ch: make(chan struct{})} }

// Notify wakes every waiter.
func (b *Broadcaster) Notify() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// Wait returns a channel closed at the next Notify.
func (b *Broadcaster) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// ErrBehind: a stream's reader fell too far behind the newest event and
// was disconnected, so it never holds anything up; it resumes from its
// last ControlNumber.
var ErrBehind = errors.New("hub: the client fell too far behind; reconnect and resume from the last ControlNumber received")

// cursor is one reader's position and topic filter.
type cursor struct {
	after  int64
	topics []string
	p      *access.Principal
}

// wants reports whether the reader receives ev.
func (c *cursor) wants(ev store.Event) bool {
	if !c.p.CanReceive(ev.Topic) {
		return false
	}
	for _, t := range c.topics {
		if publish.MatchTopic(t, ev.Topic) {
			return true
		}
	}
	return false
}

// pageSize is how many events one store read takes.
const pageSize = 256

// read returns up to limit messages after c.after and advances it past
// every event read (also those the reader does not want). It returns
// ErrBehind when more than maxLag events separate the reader from the
// newest one.
func (h *Hub) read(ctx context.Context, c *cursor, limit int) ([][]byte, bool, error) {
	var out [][]byte
	for len(out) < limit {
		evs, err := h.Events.EventsAfter(ctx, c.after, pageSize)
		if err != nil {
			return nil, false, err
		}
		if len(evs) == 0 {
			return out, false, nil
		}
		if h.cfg.MaxLag > 0 && len(evs) == pageSize {
			latest, err := h.Events.LatestControlNumber(ctx)
			if err != nil {
				return nil, false, err
			}
			if latest-c.after > h.cfg.MaxLag {
				return nil, false, fmt.Errorf("%w (%d events behind, at most %d)", ErrBehind, latest-c.after, h.cfg.MaxLag)
			}
		}
		for i, ev := range evs {
			if !c.wants(ev) {
				c.after = ev.ControlNumber
				continue
			}
			msg, err := h.message(ctx, ev)
			if err != nil {
				return nil, false, err
			}
			out = append(out, msg)
			c.after = ev.ControlNumber
			if len(out) == limit {
				return out, i < len(evs)-1 || len(evs) == pageSize, nil
			}
		}
		if len(evs) < pageSize {
			return out, false, nil
		}
	}
	return out, true, nil
}

// message renders ev as a stream carries it.
func (h *Hub) message(ctx context.Context, ev store.Event) ([]byte, error) {
	var msg []byte
	if IsRaised(ev) {
		msg = Render(ev)
	} else {
		body, err := h.RenderOther(ctx, ev)
		if err != nil {
			return nil, fmt.Errorf("hub: rendering event %s: %w", ev.ID, err)
		}
		msg = Envelope(ev, body)
	}
	return withTraceParent(msg, ev.TraceParent, ev.TraceState), nil
}

// parseTopics reads a comma-separated topic list and checks that p may
// subscribe to each; none given means every pattern p may subscribe to.
func parseTopics(list string, p *access.Principal) ([]string, error) {
	var topics []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		if p.Admin() {
			return []string{"*"}, nil
		}
		topics = p.SubscribePatterns()
		if len(topics) == 0 {
			return nil, refuse(403, "token %q lacks a subscribe:<topic pattern> scope", p.Name)
		}
		return topics, nil
	}
	for _, t := range topics {
		if err := access.ValidPattern(t); err != nil {
			return nil, refuse(400, "topics: %v", err)
		}
		if !p.CanSubscribe(t) {
			return nil, refuse(403, "token %q lacks scope %s", p.Name, access.MissingScope(access.ScopeSubscribe, t))
		}
	}
	return topics, nil
}

// waitForEvents waits until events may have been committed (a broadcast or
// the poll backstop, for commits by other processes), or ctx ends.
func (h *Hub) waitForEvents(ctx context.Context, woken <-chan struct{}) {
	t := time.NewTimer(h.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-woken:
	case <-t.C:
	}
}
