package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/internal/conf"
)

// Config selects and locates the store ([store] in config.toml).
type Config struct {
	// Driver is "sqlite" (embedded, the default) or "postgres" (several
	// replicas on one database).
	Driver string `koanf:"driver"`
	// DSN is the database file for sqlite (default "data/exportbridge.db"),
	// or a postgres://user:password@host:port/db?sslmode=… URL.
	DSN string `koanf:"dsn" secret:"true"`
	// MaxConns bounds the PostgreSQL connection pool. Default 10.
	MaxConns int `koanf:"max_conns"`
	// StatementTimeout bounds one PostgreSQL statement. Default 30s.
	StatementTimeout time.Duration `koanf:"statement_timeout"`
	// ApplicationName is how connections show in pg_stat_activity.
	// Default "exportbridge".
	ApplicationName string `koanf:"application_name"`
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
	case "postgres":
		return OpenPostgres(ctx, cfg)
	default:
		return nil, fmt.Errorf("store: unsupported driver %q (supported: \"sqlite\", \"postgres\")", cfg.Driver)
	}
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = "sqlite"
	}
	if c.DSN == "" && c.Driver == "sqlite" {
		c.DSN = "data/exportbridge.db"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 30 * time.Second
	}
	if c.ApplicationName == "" {
		c.ApplicationName = "exportbridge"
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
	switch c.Driver {
	case "sqlite":
	case "postgres":
		if !strings.HasPrefix(c.DSN, "postgres://") && !strings.HasPrefix(c.DSN, "postgresql://") {
			ps.Add("dsn", `must be a postgres:// URL for driver "postgres"`)
		}
		if c.MaxConns < 2 {
			ps.Add("max_conns", "must be at least 2, got %d", c.MaxConns)
		}
		if c.StatementTimeout < time.Second {
			ps.Add("statement_timeout", "must be at least 1s, got %s", c.StatementTimeout)
		}
	default:
		ps.Add("driver", `unsupported driver %q (supported: "sqlite", "postgres")`, c.Driver)
	}
	if c.LeaseTTL < 300*time.Millisecond {
		ps.Add("lease_ttl", "must be at least 300ms, got %s", c.LeaseTTL)
	}
	if c.AttemptRetention < time.Hour {
		ps.Add("attempt_retention", "must be at least 1h, got %s", c.AttemptRetention)
	}
	return ps
}
