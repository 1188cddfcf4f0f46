// Package testservice finds the external services tests run against
// (PostgreSQL, S3 and Azure Storage emulators, and Chromium for the
// page) and isolates each test in its own part of them. Where a service
// is unreachable a test skips with the reason, unless
// EXPORTBRIDGE_TEST_REQUIRE names it (CI sets it): then the test fails.
package testservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres is the server every development and CI machine runs.
const DefaultPostgres = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

// required reports whether EXPORTBRIDGE_TEST_REQUIRE names service.
func required(service string) bool {
	return slices.Contains(strings.Split(os.Getenv("EXPORTBRIDGE_TEST_REQUIRE"), ","), service)
}

// unavailable skips t, or fails it when the service is required.
func unavailable(t testing.TB, service string, err error) {
	t.Helper()
	if required(service) {
		t.Fatalf("%s is required (EXPORTBRIDGE_TEST_REQUIRE) but unreachable: %v", service, err)
	}
	t.Skipf("%s unreachable (set EXPORTBRIDGE_TEST_POSTGRES, or run one on 127.0.0.1:5432): %v", service, err)
}

// Postgres returns the DSN of a new, empty schema on the test server
// (EXPORTBRIDGE_TEST_POSTGRES, default DefaultPostgres), dropped when t
// ends: tests run in parallel, each in its own schema.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("EXPORTBRIDGE_TEST_POSTGRES")
	if base == "" {
		base = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, "postgres", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		t.Fatalf("creating schema: %v", err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("EXPORTBRIDGE_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
