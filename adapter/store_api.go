package adapter

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// StoreAPI is the admin API answered from the store alone, for the CLI
// when no daemon is reachable: the same handlers, so the same answers,
// except what only a running process knows (circuits, the FinOps
// connections' health, runs in progress in this process). It starts no
// dispatcher, runner or scheduler.
type StoreAPI struct {
	api *adminapi.API
	st  store.Store
}

// OpenStoreAPI opens cfg's store and the subscriptions (configured and
// stored) behind an admin API.
func OpenStoreAPI(ctx context.Context, cfg *Config, log zerolog.Logger) (*StoreAPI, error) {
	if err := checkStoreNotLost(cfg); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	reg, follower, err := followSubscriptions(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	storage, _, err := openStorage(ctx, cfg.Files)
	if err != nil {
		st.Close()
		return nil, err
	}
	// Not started: Replay, Pause and Resume write the store, which a daemon
	// started later (or running elsewhere) follows.
	pub := publish.New(publish.Config{Owner: "cli", LeaseTTL: cfg.Store.LeaseTTL}, st, reg, nil, log)
	api := &adminapi.API{Store: st, Publisher: pub, Subscriptions: reg, Stored: st, Configured: follower.configuredName,
		SubscriptionHosts: cfg.Server.SubscriptionHosts, StoredTokens: st, ConfigTokens: cfg.configTokenViews(),
		Reload: func(context.Context) {}, Log: log, Body: bodyAsSent,
		LogLevel:    func() string { return zerolog.GlobalLevel().String() },
		SetLogLevel: func(string) error { return fmt.Errorf("no daemon is running: the log level is the daemon's") },
		NextRun:     scheduleNext(cfg, time.Now),
		Readiness: func(ctx context.Context) (map[string]string, bool) {
			checks := map[string]string{}
			return checks, storeReady(ctx, st, storage, checks)
		}}
	jobs := apiJobs(cfg.Jobs)
	api.Jobs = func() []adminapi.Job { return jobs }
	return &StoreAPI{api: api, st: st}, nil
}

// Handler serves the API to the operator at this machine, who can read
// the config and the store anyway: as an admin named "cli".
func (s *StoreAPI) Handler() http.Handler {
	routes, p := s.api.Routes(), access.NewPrincipal("cli", []string{access.ScopeAdmin})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routes.ServeHTTP(w, access.WithPrincipal(r, p))
	})
}

// Close closes the store.
func (s *StoreAPI) Close() error { return s.st.Close() }

// apiJobs lists jobs as the admin API shows them.
func apiJobs(jobs []JobConfig) []adminapi.Job {
	out := make([]adminapi.Job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, adminapi.Job{Name: j.Name, Kind: j.Kind, Schedule: j.Schedule})
	}
	return out
}

// scheduleNext says when each scheduled job runs next by its cron
// expression, as the scheduler would.
func scheduleNext(cfg *Config, now func() time.Time) func(job string) time.Time {
	parser := scheduleParser()
	return func(job string) time.Time {
		for _, j := range cfg.Jobs {
			if j.Name == job && j.Schedule != "" {
				if s, err := parser.Parse(j.Schedule); err == nil {
					return s.Next(now())
				}
			}
		}
		return time.Time{}
	}
}
