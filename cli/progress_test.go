package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
)

// TestProgressLines: each phase's line as the terminal shows it, redrawn
// in place, with log lines above; and the same run as log lines.
func TestProgressLines(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 28, 14, 0, 0, 0, time.Local)
	feed := func(p *progress, now *time.Time) {
		p.Phase("vendors", pipeline.Phase{Name: adapter.PhaseStarting, Since: t0})
		p.Phase("sales", pipeline.Phase{Name: adapter.PhaseHeldElsewhere, Status: "host/42/ab", Since: t0})
		*now = t0.Add(12 * time.Second)
		p.Phase("vendors", pipeline.Phase{Name: pipeline.PhaseWaiting, Status: "Executing", Since: t0})
		p.Downloading("vendors", 3<<20, 4<<20)
		p.Converting("vendors", "Vendors V2", 1200)
		p.Committed("vendors", make([]store.Event, 3))
		p.Delivering("vendors", adapter.DeliveryProgress{Settled: 1, Total: 6, Retrying: 2, NextRetry: t0.Add(time.Minute),
			OpenCircuits: []string{"erp"}, Paused: []string{"crm"}})
		p.Finished("sales", 0, errors.New("token refused"))
		p.Close()
	}

	var screen bytes.Buffer
	now := t0
	term := newProgress(true, &screen, zerolog.Nop())
	term.now = func() time.Time { return now }
	log := zerolog.New(term.logWriter())
	term.Phase("vendors", pipeline.Phase{Name: pipeline.PhaseAsking, Since: t0})
	log.Warn().Msg("a warning")
	feed(term, &now)
	out := screen.String()
	for _, want := range []string{
		"vendors  starting\n",
		"sales    waiting: the job runs in another process (host/42/ab)\n",
		"vendors  waiting for FinOps: Executing (12s)\n",
		"vendors  downloading 3.0 MiB of 4.0 MiB\n",
		"vendors  converting Vendors V2: 1200 records\n",
		"vendors  committed 3 event(s)\n",
		"vendors  delivering: 1 of 6 settled; retrying 2, next at 14:01:00; circuit open: erp; paused: crm\n",
		"sales    failed: token refused\n",
		`{"level":"warn","message":"a warning"}`,
	} {
		require.Contains(t, out, want)
	}
	// The warning went above the live line, which was drawn again below.
	warn := strings.Index(out, "a warning")
	require.Contains(t, out[:warn], "\x1b[1A\r\x1b[J", "cleared the live line first")
	require.Contains(t, out[warn:], "\r\x1b[2Kvendors  asking FinOps")

	var logs bytes.Buffer
	now = t0
	plain := newProgress(false, nil, zerolog.New(&logs))
	plain.now = func() time.Time { return now }
	feed(plain, &now)
	for _, want := range []string{
		`"job":"sales","held_by":"host/42/ab","message":"waiting: the job runs in another process"`,
		`"elapsed":"12s","status":"Executing"`,
		`"job":"vendors","bytes":3145728,"total_bytes":4194304,"message":"downloading"`,
		`"open_circuits":["erp"]`,
		`"message":"delivering, circuit open"`,
		`"job":"sales","error":"token refused","message":"failed"`,
	} {
		require.Contains(t, logs.String(), want)
	}
	require.NotContains(t, logs.String(), "\x1b[")
}
