package adapter

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finops"
)

func noEnv() []string { return nil }

func load(t *testing.T, toml string, env map[string]string) (*Config, error) {
	t.Helper()
	opt := LoadOptions{
		Environ: func() []string {
			var out []string
			for k, v := range env {
				out = append(out, k+"="+v)
			}
			return out
		},
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	return parseConfig("test.toml", []byte(toml), opt)
}

const minimal = `
[connections.finops]
base_url = "https://usmf.operations.dynamics.com/"
token_url = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
client_id = "id"
client_secret = "env:FINOPS_SECRET"

[[jobs]]
name = "customer-groups"
kind = "dequeue"
connection = "finops"
activity_id = "{5F0C5B0E-0000-4000-8000-000000000001}"
schedule = "*/5 * * * *"

[[subscriptions]]
name = "flow"
url = "https://example.org/hooks?code=abc"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
`

func TestRepositoryConfigIsValid(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join("..", "config.toml"), LoadOptions{Environ: noEnv})
	require.NoError(t, err)
	require.True(t, cfg.Simulator.Enabled)
	require.Len(t, cfg.Jobs, 2)
	require.Len(t, cfg.Subscriptions, 1)
}

func TestDefaultsAndSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, minimal, map[string]string{"FINOPS_SECRET": "s3cret"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.Server.Listen)
	require.Equal(t, "http://127.0.0.1:8080", cfg.Server.PublicURL)
	require.Equal(t, "s3cret", cfg.Connections["finops"].ClientSecret)
	require.Equal(t, "https://usmf.operations.dynamics.com", cfg.Connections["finops"].BaseURL)
	require.Equal(t, "https://usmf.operations.dynamics.com/.default", cfg.Connections["finops"].Scope)
	require.Equal(t, 100, cfg.Jobs[0].MaxMessages)
	sub := cfg.Subscriptions[0]
	require.Equal(t, []string{"dataexport"}, sub.Topics)
	require.Equal(t, []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, sub.Secret, "a single secret is a one-element list")
	require.Equal(t, []time.Duration{3 * time.Second, 12 * time.Second, 27 * time.Second, 48 * time.Second}, sub.Retry)
	require.Equal(t, "json", cfg.Convert.Format)
	require.Equal(t, 168*time.Hour, cfg.Files.Retention)
}

func TestEnvironmentOverridesFile(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, minimal, map[string]string{
		"FINOPS_SECRET":                               "s",
		"EXPORTBRIDGE_SERVER__LISTEN":                 "127.0.0.1:9999",
		"EXPORTBRIDGE_LOG__LEVEL":                     "debug",
		"EXPORTBRIDGE_ADMIN_TOKEN":                    "not-a-key-override", // no "__": a secret for env:NAME, not a key
		"EXPORTBRIDGE_CONNECTIONS__FINOPS__CLIENT_ID": "other-id",
	})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9999", cfg.Server.Listen)
	require.Equal(t, "debug", cfg.Log.Level)
	require.Equal(t, "other-id", cfg.Connections["finops"].ClientID)
}

func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(p, []byte("from-file\n"), 0o600))
	toml := strings.Replace(minimal, `client_secret = "env:FINOPS_SECRET"`, `client_secret_file = "`+p+`"`, 1)
	cfg, err := load(t, toml, nil)
	require.NoError(t, err)
	require.Equal(t, "from-file", cfg.Connections["finops"].ClientSecret)
}

func TestEveryProblemIsReportedWithItsLine(t *testing.T) {
	t.Parallel()
	toml := `[server]
listen = "127.0.0.1:8080"
lisen = "x"

[connections.finops]
base_url = "https://usmf.operations.dynamics.com"
token_url = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
client_id = "id"
client_secret = "env:UNSET_SECRET"

[[jobs]]
name = "vendors"
kind = "package-export"
connection = "finops"
definition_group = "Vendors export"
poll_interval = "15 seconds"

[[jobs]]
name = "customers"
kind = "dequeue"
connection = "fin-ops"
activity_id = "not-a-guid"

[[subscriptions]]
name = "flow"
url = "https://example.org/x"
secret = "plain"
retry = ["3s", "soon"]
headers = { "X-Api-Key" = "env:UNSET_KEY" }
`
	_, err := load(t, toml, nil)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	got := map[string]int{}
	for _, p := range ce.Problems {
		got[p.Key] = p.Line
	}
	require.Equal(t, map[string]int{
		"server.lisen":                       3,
		"connections.finops.client_secret":   9,
		"jobs[0].poll_interval":              16,
		"jobs[1].connection":                 21,
		"jobs[1].activity_id":                22,
		"subscriptions[0].secret[0]":         27,
		"subscriptions[0].retry[1]":          28,
		"subscriptions[0].headers.X-Api-Key": 29,
	}, got)
	msg := err.Error()
	require.Contains(t, msg, `test.toml:3: server.lisen: unknown key (did you mean "listen"?)`)
	require.Contains(t, msg, `test.toml:16: jobs[0].poll_interval: invalid duration "15 seconds"`)
	require.Contains(t, msg, `environment variable UNSET_SECRET is not set`)
	// Problems come in file order.
	require.Less(t, strings.Index(msg, "server.lisen"), strings.Index(msg, "jobs[0]"))
}

func TestInvalidTOMLNamesTheLine(t *testing.T) {
	t.Parallel()
	_, err := load(t, "[server]\nlisten = \"x\"\nbroken = = 1\n", nil)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 1)
	require.Equal(t, 3, ce.Problems[0].Line)
	require.Contains(t, err.Error(), "invalid TOML")
}

func TestJobValidation(t *testing.T) {
	t.Parallel()
	base := JobConfig{Name: "j", Kind: KindDequeue, Connection: "finops", ActivityID: "5f0c5b0e-0000-4000-8000-000000000001"}
	cases := []struct {
		name   string
		mutate func(*JobConfig)
		key    string // "" means valid
	}{
		{"valid dequeue", func(j *JobConfig) {}, ""},
		{"seconds field", func(j *JobConfig) { j.Schedule = "*/10 * * * * *" }, ""},
		{"descriptor", func(j *JobConfig) { j.Schedule = "@every 1m" }, ""},
		{"bad cron", func(j *JobConfig) { j.Schedule = "every minute" }, "schedule"},
		{"bad name", func(j *JobConfig) { j.Name = "has space" }, "name"},
		{"unknown kind", func(j *JobConfig) { j.Kind = "push" }, "kind"},
		{"export field on dequeue job", func(j *JobConfig) { j.DefinitionGroup = "x" }, "definition_group"},
		{"export without group", func(j *JobConfig) { j.Kind = KindPackageExport; j.ActivityID = "" }, "definition_group"},
		{"activity on export job", func(j *JobConfig) { j.Kind = KindPackageExport; j.DefinitionGroup = "g" }, "activity_id"},
		{"timeout under poll interval", func(j *JobConfig) {
			j.Kind, j.ActivityID, j.DefinitionGroup, j.Timeout = KindPackageExport, "", "g", time.Second
		}, "timeout"},
		{"bad encoding", func(j *JobConfig) { j.Encoding = "klingon" }, "encoding"},
	}
	cc := minimalConnections(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := base
			tc.mutate(&j)
			ps := j.WithDefaults().Validate(cc)
			if tc.key == "" {
				require.Empty(t, ps)
				return
			}
			require.NotEmpty(t, ps)
			require.Equal(t, tc.key, ps[0].Key, "%v", ps)
		})
	}
}

func minimalConnections(t *testing.T) map[string]finops.Config {
	t.Helper()
	cfg, err := load(t, minimal, map[string]string{"FINOPS_SECRET": "s"})
	require.NoError(t, err)
	return cfg.Connections
}

func FuzzLoadConfig(f *testing.F) {
	repo, err := os.ReadFile(filepath.Join("..", "config.toml"))
	require.NoError(f, err)
	f.Add(string(repo))
	f.Add(minimal)
	f.Add("[server]\nlisten = 1\n[[jobs]]\nname = [1]\n[connections.x]\ntimeout = true\n")
	f.Add("[[subscriptions]]\nheaders = { a = 1 }\nretry = \"3s\"\nsecret = [\"whsec_\"]\n")
	f.Fuzz(func(t *testing.T, toml string) {
		cfg, err := parseConfig("fuzz.toml", []byte(toml), LoadOptions{Environ: noEnv,
			LookupEnv: func(string) (string, bool) { return "", false },
			ReadFile:  func(string) ([]byte, error) { return nil, errors.New("no files in fuzzing") }})
		if err != nil {
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			require.NotEmpty(t, ce.Problems)
			return
		}
		require.Empty(t, cfg.Validate(), "a loaded config must validate")
	})
}

// TestSecretValuesAreNeverPrinted: a secret key with a wrongly typed value
// is reported by key and kind, never with its value.
func TestSecretValuesAreNeverPrinted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, from, to, key string }{
		{"numeric client_secret", `client_secret = "env:FINOPS_SECRET"`, `client_secret = 1234567890`, "connections.finops.client_secret"},
		{"boolean client_secret", `client_secret = "env:FINOPS_SECRET"`, `client_secret = true`, "connections.finops.client_secret"},
		{"numeric subscription url", `url = "https://example.org/hooks?code=abc"`, `url = 1234567890`, "subscriptions[0].url"},
		{"numeric header", `secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`, "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nheaders = { \"X-Api-Key\" = 1234567890 }", "subscriptions[0].headers.X-Api-Key"},
		{"table as secret", `client_secret = "env:FINOPS_SECRET"`, `client_secret = [1234567890]`, "connections.finops.client_secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, strings.Replace(minimal, tc.from, tc.to, 1), map[string]string{"FINOPS_SECRET": "s"})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.key)
			require.NotContains(t, err.Error(), "1234567890")
			require.NotContains(t, err.Error(), "true")
		})
	}
}

func TestStoreAndHubKeysAreValidatedByLine(t *testing.T) {
	t.Parallel()
	toml := `[store]
driver = "postgres"
dsn = "mysql://u:SECRET-PW@db/eb"
max_conns = 1
statement_timeout = "10ms"

[hub]
ws_ping = "-1s"

[[tokens]]
name = "agent"
token = "short"
scopes = ["publish:"]
`
	_, err := load(t, toml, nil)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	got := map[string]int{}
	for _, p := range ce.Problems {
		got[p.Key] = p.Line
	}
	require.Equal(t, map[string]int{"store.dsn": 3, "store.max_conns": 4, "store.statement_timeout": 5, "hub.ws_ping": 8,
		"tokens[0].token": 12, "tokens[0].scopes": 13}, got)
	require.NotContains(t, err.Error(), "SECRET-PW")
	require.NotContains(t, err.Error(), "short", "a token's value is a secret")
}

// TestDeployReplicaConfigIsValid keeps deploy/replica.toml (the compose
// file's config) loadable, with the secrets the compose file provides.
func TestDeployReplicaConfigIsValid(t *testing.T) {
	t.Parallel()
	env := map[string]string{"FINOPS_CLIENT_SECRET": "s", "EXPORTBRIDGE_ADMIN_TOKEN": "admin-token-0123456789", "FLOW_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"S3_ACCESS_KEY": "minio", "S3_SECRET_KEY": "minio-secret"}
	cfg, err := LoadConfig(filepath.Join("..", "deploy", "replica.toml"), LoadOptions{Environ: noEnv, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	require.NoError(t, err)
	require.Equal(t, "postgres", cfg.Store.Driver)
	require.Equal(t, "s3", cfg.Files.Driver)
	require.Equal(t, "minio-secret", cfg.Files.S3.SecretAccessKey)
}

// TestRelativePathsStartAtTheConfigFolder: wherever the command runs from,
// relative paths in a config file (the database, the folders, *_file
// secrets) mean the file's own folder.
func TestRelativePathsStartAtTheConfigFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("s3cr3t\n"), 0o600))
	cfgPath := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`[store]
dsn = "data/eb.db"

[files]
dir = "files"
work_dir = "/abs/work"

[quarantine]
dir = "q"

[connections.finops]
base_url = "https://usmf.operations.dynamics.com"
token_url = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
client_id = "id"
client_secret_file = "secret.txt"
`), 0o600))
	cfg, err := LoadConfig(cfgPath, LoadOptions{Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "data", "eb.db"), cfg.Store.DSN)
	require.Equal(t, filepath.Join(dir, "files"), cfg.Files.Dir)
	require.Equal(t, "/abs/work", cfg.Files.WorkDir, "absolute paths stay")
	require.Equal(t, filepath.Join(dir, "q"), cfg.Quarantine.Dir)
	require.Equal(t, "s3cr3t", cfg.Connections["finops"].ClientSecret)
}

func TestDurationsAreLoggedWithTheirUnit(t *testing.T) {
	// Not parallel: it sets the process-wide log level.
	var b strings.Builder
	log := NewLogger(LogConfig{Level: "info", Format: "json"}, &b)
	log.Info().Dur("retry_in", 845*time.Millisecond).Int("records", 7).Msg("x")
	require.Contains(t, b.String(), `"retry_in":"845ms"`)
	require.Contains(t, b.String(), `"records":7`, "numbers stay numbers")
}

// TestDemoReceiverFollowsTheListenAddress: the repository's config with
// EXPORTBRIDGE_SERVER__LISTEN changed sends its webhooks to its own demo
// receiver on that address, and mints links for it.
func TestDemoReceiverFollowsTheListenAddress(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join("..", "config.toml"), LoadOptions{Environ: func() []string {
		return []string{"EXPORTBRIDGE_SERVER__LISTEN=127.0.0.1:9090"}
	}})
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9090", cfg.Server.PublicURL)
	require.Equal(t, "http://127.0.0.1:9090/demo/receiver", cfg.Subscriptions[0].URL)
}

// TestAProblemFromTheEnvironmentNamesTheVariable: a value an environment
// variable set is reported against the variable, not a line of the file.
func TestAProblemFromTheEnvironmentNamesTheVariable(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(filepath.Join("..", "config.toml"), LoadOptions{Environ: func() []string {
		return []string{"EXPORTBRIDGE_SERVER__LISTEN=nowhere", "EXPORTBRIDGE_STORE__LEASE_TTL=1ms"}
	}})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, `EXPORTBRIDGE_SERVER__LISTEN: server.listen: must be host:port, got "nowhere"`)
	require.Contains(t, msg, `EXPORTBRIDGE_STORE__LEASE_TTL: store.lease_ttl: must be at least 300ms`)
	require.NotContains(t, msg, "config.toml:", "no line of the file is blamed")
}
