package adapter

import (
	"context"
	"strings"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// SimOptions configures `exportbridge sim`.
type SimOptions struct {
	Listen       string
	Sim          finopssim.Config
	OnReady      func(addr string, sim *finopssim.Server)
	DemoActivity []string
}

// RunSimulator serves the FinOps simulator until ctx ends.
func RunSimulator(ctx context.Context, opt SimOptions, log zerolog.Logger) error {
	cfg := opt.Sim
	cfg.EnqueueActivities = append(cfg.EnqueueActivities, opt.DemoActivity...)
	sim := finopssim.New(cfg, log)
	return sim.Serve(ctx, opt.Listen, func(addr string) {
		log.Info().Str("component", "finopssim").Str("addr", addr).
			Str("token_url", "http://"+addr+"/demo-tenant/oauth2/v2.0/token").
			Str("activities", strings.Join(cfg.EnqueueActivities, ",")).Msg("FinOps simulator listening")
		if opt.OnReady != nil {
			opt.OnReady(addr, sim)
		}
	})
}

// simActivities are the activity ids of dequeue jobs whose connection points
// at the built-in simulator: the demo queues packages for exactly those.
func simActivities(cfg *Config) []string {
	var out []string
	for _, j := range cfg.Jobs {
		if j.Kind != KindDequeue {
			continue
		}
		if c, ok := cfg.Connections[j.Connection]; ok && strings.Contains(c.BaseURL, cfg.Simulator.Listen) {
			out = append(out, strings.Trim(j.ActivityID, "{}"))
		}
	}
	return out
}
