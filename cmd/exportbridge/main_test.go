package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
	"github.com/stretchr/testify/require"
)

func TestCheckConfigExitCodes(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte(`[server]
listn = "127.0.0.1:8080"

[connections.finops]
base_url = "https://usmf.operations.dynamics.com"
token_url = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
client_id = "id"
client_secret = "s"

[[jobs]]
name = "vendors"
kind = "package-export"
connection = "finops"
definition_group = "Vendors export"
poll_interval = "fast"

[[jobs]]
name = "customers"
kind = "dequeue"
connection = "missing"
activity_id = "5f0c5b0e-0000-4000-8000-000000000001"
`), 0o600))
	cases := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{"repository config", []string{"check-config", "--config", "../../config.toml"}, exitOK, []string{"OK", "customer-groups", "demo-receiver"}},
		{"three problems", []string{"check-config", "--config", bad}, exitUsage, []string{
			"bad.toml:2: server.listn: unknown key", "bad.toml:15: jobs[0].poll_interval: invalid duration", "bad.toml:20: jobs[1].connection", "3 problem(s)"}},
		{"missing file", []string{"check-config", "--config", "/nonexistent.toml"}, exitUsage, []string{"cannot read config"}},
		{"unknown command", []string{"frobnicate"}, exitUsage, []string{"unknown command"}},
		{"no command", nil, exitUsage, []string{"Usage:"}},
		{"version", []string{"version"}, exitOK, []string{"exportbridge "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", out.String(), errOut.String())
			for _, s := range tc.out {
				require.Contains(t, out.String()+errOut.String(), s)
			}
		})
	}
}

func TestMigrateStoreCopiesAndCanRunAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eb.db")
	src, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	_, err = src.SetSettingIfAbsent(ctx, "signing_key", "k")
	require.NoError(t, err)
	require.NoError(t, src.Close())
	dsn := testservice.Postgres(t)

	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run(ctx, []string{"migrate-store", "--from", path, "--to", dsn}, &out, &errb), errb.String())
	require.Regexp(t, `settings\s+\d+ read\s+1 copied`, out.String())
	out.Reset()
	require.Equal(t, exitOK, run(ctx, []string{"migrate-store", "--from", path, "--to", dsn}, &out, &errb), errb.String())
	require.Regexp(t, `settings\s+\d+ read\s+0 copied`, out.String(), "idempotent")

	require.Equal(t, exitUsage, run(ctx, []string{"migrate-store", "--from", path}, &out, &errb))
	require.Equal(t, exitUsage, run(ctx, []string{"migrate-store", "--from", path, "--to", path}, &out, &errb))
	errb.Reset()
	require.Equal(t, exitFailed, run(ctx, []string{"migrate-store", "--from", path, "--to", "postgres://u:SECRET-PW@127.0.0.1:1/x?connect_timeout=1"}, &out, &errb))
	require.NotContains(t, errb.String(), "SECRET-PW")
}
