package store

import (
	"github.com/exportbridge/exportbridge/internal/conf"
)

// Config selects and locates the store ([store] in config.toml).
type Config struct {
	// Driver is "sqlite" (embedded, the default). A PostgreSQL driver for
	// several replicas is planned behind the same interface.
	Driver string `koanf:"driver"`
	// DSN is the database file for sqlite. Default "data/exportbridge.db".
	DSN string `koanf:"dsn" secret:"true"`
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = "sqlite"
	}
	if c.DSN == "" {
		c.DSN = "data/exportbridge.db"
	}
	return c
}

// Validate reports problems keyed relative to [store].
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.Driver != "sqlite" {
		ps.Add("driver", `unsupported driver %q (supported: "sqlite")`, c.Driver)
	}
	return ps
}
