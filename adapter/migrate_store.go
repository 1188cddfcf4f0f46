package adapter

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
)

// storeFrom reads a store location given on the command line: a config
// file (its [store]), a postgres:// URL, or a SQLite database file.
func storeFrom(ref string) (store.Config, error) {
	switch {
	case strings.HasSuffix(ref, ".toml"):
		cfg, err := LoadConfig(ref, LoadOptions{})
		if err != nil {
			return store.Config{}, err
		}
		return cfg.Store, nil
	case strings.HasPrefix(ref, "postgres://"), strings.HasPrefix(ref, "postgresql://"):
		return store.Config{Driver: "postgres", DSN: ref}.WithDefaults(), nil
	default:
		return store.Config{Driver: "sqlite", DSN: ref}.WithDefaults(), nil
	}
}

// MigrateStore copies everything from one store to another (store.Copy):
// from is a config file, a postgres:// URL or a SQLite file; to is a
// postgres:// URL or a SQLite file. It reports each table.
func MigrateStore(ctx context.Context, from, to string, report func(store.CopyReport)) error {
	fc, err := storeFrom(from)
	if err != nil {
		return err
	}
	tc, err := storeFrom(to)
	if err != nil {
		return err
	}
	if fc.Driver == tc.Driver && fc.DSN == tc.DSN {
		return fmt.Errorf("%w: --from and --to are the same store", ErrUsage)
	}
	src, err := store.Open(ctx, fc)
	if err != nil {
		return fmt.Errorf("opening --from: %w", err)
	}
	defer src.Close()
	dst, err := store.Open(ctx, tc)
	if err != nil {
		return fmt.Errorf("opening --to: %w", err)
	}
	defer dst.Close()
	return store.Copy(ctx, src, dst, time.Now(), report)
}
