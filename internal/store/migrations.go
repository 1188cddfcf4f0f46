package store

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// migrationFiles are the schema migrations of each driver, one SQL file
// each, applied in file-name order at Open; each runs once, recorded in
// schema_migrations. Never edit a released migration: add a new file.
//
//go:embed migrations
var migrationFiles embed.FS

// migration is one numbered schema step.
type migration struct {
	version    int
	name       string
	statements []string
}

// loadMigrations reads driver's migrations. File names start with their
// version ("0002_leases.sql"); versions must run 1, 2, 3… without gaps.
func loadMigrations(driver string) ([]migration, error) {
	dir := path.Join("migrations", driver)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations of %s: %w", driver, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []migration
	for i, e := range entries {
		var v int
		if _, err := fmt.Sscanf(e.Name(), "%04d_", &v); err != nil || v != i+1 {
			return nil, fmt.Errorf("store: migration %s: expected version %d first in its name", e.Name(), i+1)
		}
		data, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), statements: splitStatements(string(data))})
	}
	return out, nil
}

// splitStatements splits a migration at the semicolons that end its
// statements, dropping comment lines (which must not hold semicolons).
func splitStatements(sql string) []string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	var out []string
	for _, stmt := range strings.Split(b.String(), ";") {
		if s := strings.TrimSpace(stmt); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// LatestSchemaVersion is the schema version this binary migrates SQLite
// databases to.
func LatestSchemaVersion() int { return LatestSchemaVersionOf("sqlite") }

// LatestSchemaVersionOf is the schema version this binary migrates
// driver's databases to.
func LatestSchemaVersionOf(driver string) int {
	steps, err := loadMigrations(driver)
	if err != nil {
		return 0
	}
	return len(steps)
}
