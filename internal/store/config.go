package store

import (
	"context"
	"fmt"
	"time"

	"github.com/exportbridge/exportbridge/internal/conf"
)

// Config selects and locates the store ([store] in config.toml).
type Config struct {
	// Driver is "sqlite" (embedded, the default). A PostgreSQL driver for
	// several replicas is planned behind the same interface.
	Driver string `koanf:"driver"`
	// DSN is the database file for sqlite. Default "data/exportbridge.db".
	DSN string `koanf:"dsn" secret:"true"`
	// LeaseTTL is how long a delivery or job lease lasts without renewal.
	// Live processes renew theirs every LeaseTTL/3; the work of a process
	// that died is taken over by another (or by the next start) once its
	// leases expire. Default 30s.
	LeaseTTL time.Duration `koanf:"lease_ttl"`
	// AttemptRetention is how long the record of each delivery attempt is
	// kept (the delivery itself stays). Default 720h (30 days).
	AttemptRetention time.Duration `koanf:"attempt_retention"`
}

// Open opens the store cfg names (defaults applied): the one place that
// chooses a driver.
func Open(ctx context.Context, cfg Config) (Store, error) {
	cfg = cfg.WithDefaults()
	switch cfg.Driver {
	case "sqlite":
		return OpenSQLite(ctx, cfg.DSN)
	default:
		return nil, fmt.Errorf("store: unsupported driver %q (supported: \"sqlite\")", cfg.Driver)
	}
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = "sqlite"
	}
	if c.DSN == "" {
		c.DSN = "data/exportbridge.db"
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.AttemptRetention == 0 {
		c.AttemptRetention = 720 * time.Hour
	}
	return c
}

// Validate reports problems keyed relative to [store].
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.Driver != "sqlite" {
		ps.Add("driver", `unsupported driver %q (supported: "sqlite")`, c.Driver)
	}
	if c.LeaseTTL < 300*time.Millisecond {
		ps.Add("lease_ttl", "must be at least 300ms, got %s", c.LeaseTTL)
	}
	if c.AttemptRetention < time.Hour {
		ps.Add("attempt_retention", "must be at least 1h, got %s", c.AttemptRetention)
	}
	return ps
}
