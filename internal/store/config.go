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
	return ps
}
