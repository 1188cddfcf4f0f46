package publish

import (
	"context"
	"time"
)

// pacer spaces a subscription's attempts to at most perSecond per second
// (max_per_second): a target that asks for a rate gets it even when a
// backlog is due at once.
type pacer struct {
	perSecond float64
	next      time.Time
}

// wait returns once the next attempt may start, false if ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	if p.perSecond <= 0 {
		return true
	}
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		now = p.next
	}
	p.next = now.Add(time.Duration(float64(time.Second) / p.perSecond))
	return true
}
