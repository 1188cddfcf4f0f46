package adapter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/internal/files"
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
	if err := store.Copy(ctx, src, dst, time.Now(), report); err != nil {
		return err
	}
	// Converted files move too when both sides are configs whose storage
	// differs (local disk to a bucket, typically).
	if !strings.HasSuffix(from, ".toml") || !strings.HasSuffix(to, ".toml") {
		return nil
	}
	fromCfg, err := LoadConfig(from, LoadOptions{})
	if err != nil {
		return err
	}
	toCfg, err := LoadConfig(to, LoadOptions{})
	if err != nil {
		return err
	}
	if fromCfg.Files.Driver == toCfg.Files.Driver && fromCfg.Files.Dir == toCfg.Files.Dir && toCfg.Files.Driver == "local" {
		return nil
	}
	srcFiles, _, err := openStorage(ctx, fromCfg.Files)
	if err != nil {
		return err
	}
	dstFiles, _, err := openStorage(ctx, toCfg.Files)
	if err != nil {
		return err
	}
	rep, err := copyFiles(ctx, src, srcFiles, dstFiles, toCfg.Files.WorkDir)
	report(rep)
	return err
}

// copyFiles puts every live artifact's file from one storage into
// another, skipping those already there.
func copyFiles(ctx context.Context, st store.Store, from, to files.Storage, workDir string) (store.CopyReport, error) {
	rep := store.CopyReport{Table: "files"}
	arts, err := st.ExpiredArtifacts(ctx, time.Now().Add(100*365*24*time.Hour), math.MaxInt32) // every live one
	if err != nil {
		return rep, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return rep, err
	}
	for _, a := range arts {
		rep.Rows++
		if o, err := to.Open(ctx, a.Key); err == nil {
			o.Close()
			continue
		} else if !errors.Is(err, files.ErrNotFound) {
			return rep, err
		}
		if err := copyFile(ctx, from, to, a, workDir); err != nil {
			return rep, fmt.Errorf("files: %s: %w", a.Key, err)
		}
		rep.Copied++
	}
	return rep, nil
}

func copyFile(ctx context.Context, from, to files.Storage, a store.Artifact, workDir string) error {
	in, err := from.Open(ctx, a.Key)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(workDir, "migrate-*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone already once Put took it over
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return to.Put(ctx, a.Key, tmp.Name(), files.Meta{ContentType: a.ContentType, ContentEncoding: a.ContentEncoding})
}
