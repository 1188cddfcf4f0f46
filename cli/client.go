package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/redact"
)

// TokenEnv names the environment variable that holds the API token.
const TokenEnv = "EXPORTBRIDGE_TOKEN"

// client talks to the admin API: the daemon's over HTTP, or the same API
// answered in this process from the store (local).
type client struct {
	base  string
	token string
	hc    *http.Client
	// local: answered from the store; cfg is the loaded config (nil when
	// --server was given without one).
	local bool
	cfg   *adapter.Config
	close func()
}

// apiFlags are the flags of every command that talks to the API.
type apiFlags struct {
	config func() string
	server string
	token  string
	output string
}

func addAPIFlags(cmd *cobra.Command, listing bool) *apiFlags {
	f := &apiFlags{config: configFlag(cmd)}
	cmd.Flags().StringVar(&f.server, "server", "", "the daemon's URL (default: the config's server.listen; the store when no daemon answers there)")
	cmd.Flags().StringVar(&f.token, "token", "", "API token (default $"+TokenEnv+", then the config's server.admin_token)")
	if listing {
		cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table | json")
	}
	return f
}

func (f *apiFlags) json() (bool, error) {
	switch f.output {
	case "", "table":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usage(fmt.Errorf("--output %q: must be table or json", f.output))
}

// connect finds the API. With --server it must answer. Otherwise it tries
// the config's server.listen and, when nothing answers there (or its API
// is off), answers from the store in this process.
func (f *apiFlags) connect(cmd *cobra.Command) (*client, error) {
	if _, err := f.json(); err != nil {
		return nil, err
	}
	token := f.token
	if token == "" {
		token = os.Getenv(TokenEnv)
	}
	if f.server != "" {
		if _, err := url.ParseRequestURI(f.server); err != nil || !strings.HasPrefix(f.server, "http") {
			return nil, usage(fmt.Errorf("--server %q: must be a URL like http://127.0.0.1:8080", f.server))
		}
		c := &client{base: strings.TrimSuffix(f.server, "/"), token: token, hc: &http.Client{Timeout: 30 * time.Second}, close: func() {}}
		if c.token == "" {
			// The config's token, if there is a config to read.
			if cfg, err := adapter.LoadConfig(f.config(), adapter.LoadOptions{}); err == nil {
				c.token, c.cfg = cfg.Server.AdminToken, cfg
			}
		}
		return c, nil
	}
	cfg, err := loadConfig(f.config(), cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	if token == "" {
		token = cfg.Server.AdminToken
	}
	base := "http://" + dialable(cfg.Server.Listen)
	if token != "" {
		c := &client{base: base, token: token, hc: &http.Client{Timeout: 30 * time.Second}, cfg: cfg, close: func() {}}
		if c.answers(cmd.Context()) {
			return c, nil
		}
	}
	api, err := adapter.OpenStoreAPI(cmd.Context(), cfg, zerolog.Nop())
	if err != nil {
		return nil, failed(fmt.Errorf("no daemon answers at %s, and the store cannot be read: %w", base, err))
	}
	h := api.Handler()
	return &client{base: "http://store", hc: &http.Client{Transport: handlerTransport{h}}, local: true, cfg: cfg,
		close: func() { _ = api.Close() }}, nil
}

// dialable turns a listen address into one to dial: an unspecified host
// (":8080", "0.0.0.0:8080") is this machine.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// answers reports whether a daemon's API answers at c.base with c.token:
// yes also when it refuses the token (the caller then says so).
func (c *client) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/log-level", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound // 404: the daemon runs with its API off
}

// handlerTransport answers requests with an in-process handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// apiError is an API's refusal.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// do sends a request and decodes the JSON answer into out. A refusal is
// a failure (exit 1) with the API's message.
func (c *client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return failed(fmt.Errorf("the daemon at %s does not answer: %w", redact.URL(c.base), errors.Unwrap(err)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return failed(err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += fmt.Sprintf(" (give a token with --token or $%s)", TokenEnv)
		}
		return failed(&apiError{status: resp.StatusCode, msg: msg})
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return failed(fmt.Errorf("the API's answer to %s %s: %w", method, path, err))
		}
	}
	return nil
}

func (c *client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, out)
}

func (c *client) post(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodPost, path, q, nil, out)
}

// show is what every listing does: find the API, GET path, and write the
// answer as JSON (-o json) or as the table table draws (given where the
// answer came from). It returns the answer for what the command decides
// after (status's exit code).
func show[T any](cmd *cobra.Command, f *apiFlags, path string, q url.Values, table func(w io.Writer, v T, source string)) (T, error) {
	var v T
	c, err := f.connect(cmd)
	if err != nil {
		return v, err
	}
	defer c.close()
	if err := c.get(cmd.Context(), path, q, &v); err != nil {
		return v, err
	}
	asJSON, _ := f.json()
	return v, emit(cmd.OutOrStdout(), asJSON, v, func(w io.Writer) { table(w, v, c.source()) })
}

// source says where answers come from, for a table's last line.
func (c *client) source() string {
	if c.local {
		return "read from the store: no daemon answered"
	}
	return "from the daemon at " + redact.URL(c.base)
}
