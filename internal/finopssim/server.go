// Package finopssim is an in-process simulator of the Dynamics 365 Finance &
// Operations endpoints exportbridge uses: the Entra ID token endpoint (v1
// and v2), the recurring-integration connector API (dequeue, download, ack,
// jobstatus) with a visibility timeout and redelivery, the data-management
// package API with a realistic status progression, SAS-style blob URLs that
// expire and refuse bearer tokens, and per-path fault injection.
//
// Behaviour follows shared/reference/finops-api.md; where the reference marks
// something unconfirmed, the simulator picks the documented or most common
// form and says so in a comment.
package finopssim

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Config tunes the simulator. Zero values take the defaults shown.
type Config struct {
	ClientID     string        // default "exportbridge-demo"
	ClientSecret string        // default "demo-secret"
	TokenTTL     time.Duration // lifetime of issued tokens; default 1h
	// VisibilityTimeout is how long a dequeued, unacknowledged message stays
	// hidden before it is redelivered. FinOps documents 30 minutes.
	VisibilityTimeout time.Duration
	// ExportPolls is how many GetExecutionSummaryStatus calls an export
	// answers NotRun/Executing before it finishes. Default 2.
	ExportPolls int
	// EmptyURLPolls is how many times GetExportedPackageUrl answers "" after
	// an export succeeded (FinOps does this while the package is written).
	// Default 1.
	EmptyURLPolls int
	// SASTTL is the lifetime of blob URLs. Default 1h.
	SASTTL time.Duration
	// Rows is the number of records per entity in generated packages. Default 7.
	Rows int
	// NestedValue answers ExportToPackage/GetExportedPackageUrl with the
	// nested {"value":{"value":…}} form some docs show.
	NestedValue bool
	// EnqueueEvery, when set, enqueues a generated package on each of
	// EnqueueActivities at this interval (the demo's steady stream).
	EnqueueEvery      time.Duration
	EnqueueActivities []string
	// Now is the clock; default time.Now. Tests move it to expire tokens,
	// SAS URLs and visibility timeouts without sleeping.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = "exportbridge-demo"
	}
	if c.ClientSecret == "" {
		c.ClientSecret = "demo-secret"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = time.Hour
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = 30 * time.Minute
	}
	if c.ExportPolls == 0 {
		c.ExportPolls = 2
	}
	if c.EmptyURLPolls == 0 {
		c.EmptyURLPolls = 1
	}
	if c.SASTTL == 0 {
		c.SASTTL = time.Hour
	}
	if c.Rows == 0 {
		c.Rows = 7
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Server is the simulator. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	sasKey []byte

	mu         sync.Mutex
	tokens     map[string]time.Time // access token → expiry
	queues     map[string][]*message
	executions map[string]*execution
	failGroups map[string][]ExecutionError
	faults     []*Fault
	requests   map[string]int // "METHOD path" → count
	agents     map[string]int // User-Agent → count
	blobs      map[string][]byte
	seq        uint64
}

// New returns a simulator with cfg.
func New(cfg Config, log zerolog.Logger) *Server {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Server{
		cfg:        cfg.withDefaults(),
		log:        log.With().Str("component", "finopssim").Logger(),
		sasKey:     key,
		tokens:     map[string]time.Time{},
		queues:     map[string][]*message{},
		executions: map[string]*execution{},
		failGroups: map[string][]ExecutionError{},
		requests:   map[string]int{},
		agents:     map[string]int{},
		blobs:      map[string][]byte{},
	}
}

// Credentials returns the client id and secret the token endpoint accepts.
func (s *Server) Credentials() (id, secret string) { return s.cfg.ClientID, s.cfg.ClientSecret }

// Handler returns the simulator's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken(false))
	mux.HandleFunc("POST /{tenant}/oauth2/token", s.handleToken(true))
	mux.HandleFunc("GET /api/connector/dequeue/{activity}", s.authed(s.handleDequeue))
	mux.HandleFunc("GET /api/connector/download/{activity}", s.authed(s.handleDownload))
	mux.HandleFunc("POST /api/connector/ack/{activity}", s.authed(s.handleAck))
	mux.HandleFunc("GET /api/connector/jobstatus/{activity}", s.authed(s.handleJobStatus))
	mux.HandleFunc("POST /data/DataManagementDefinitionGroups/{action}", s.authed(s.handleAction))
	mux.HandleFunc("GET /blob/dmf/{name}", s.handleBlob)
	mux.HandleFunc("POST /_sim/enqueue/{activity}", s.handleSimEnqueue)
	mux.HandleFunc("POST /_sim/faults", s.handleSimFault)
	mux.HandleFunc("GET /_sim/state", s.handleSimState)
	return s.withFaults(mux)
}

// Serve listens on addr (e.g. "127.0.0.1:8089") until ctx ends, and runs the
// enqueue ticker when configured. It returns the bound address on ready.
func (s *Server) Serve(ctx context.Context, addr string, ready func(addr string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("finopssim: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if s.cfg.EnqueueEvery > 0 && len(s.cfg.EnqueueActivities) > 0 {
		// The first packages are queued before ready, so a client started
		// right after finds them.
		for _, a := range s.cfg.EnqueueActivities {
			s.EnqueueSample(a)
		}
		go s.enqueueLoop(ctx)
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		return nil
	}
}

func (s *Server) enqueueLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.EnqueueEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range s.cfg.EnqueueActivities {
			s.EnqueueSample(a)
		}
	}
}

// Requests returns how many requests matched "METHOD /path" so far (path
// without query; for parameterised routes the concrete path).
func (s *Server) Requests(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[methodPath]
}

// UserAgents counts the requests by User-Agent header.
func (s *Server) UserAgents() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.agents)
}

// RevokeTokens makes every issued token invalid, so the next call gets 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
}

func (s *Server) now() time.Time { return s.cfg.Now() }

func (s *Server) nextID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (s *Server) handleToken(v1 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": err.Error()})
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "AADSTS70003: grant_type must be client_credentials"})
			return
		}
		if id != s.cfg.ClientID || secret != s.cfg.ClientSecret {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": []int{7000215}})
			return
		}
		if v1 && r.PostForm.Get("resource") == "" || !v1 && !strings.HasSuffix(r.PostForm.Get("scope"), "/.default") {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request",
				"error_description": "AADSTS90014: The required field 'scope' (v2) or 'resource' (v1) is missing or malformed."})
			return
		}
		tok := "sim-" + s.nextID()
		s.mu.Lock()
		s.tokens[tok] = s.now().Add(s.cfg.TokenTTL)
		s.mu.Unlock()
		secs := int(s.cfg.TokenTTL / time.Second)
		if v1 { // the v1 docs show expires_in as a JSON string
			writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "access_token": tok,
				"expires_in": fmt.Sprint(secs), "expires_on": fmt.Sprint(s.now().Add(s.cfg.TokenTTL).Unix()), "resource": r.PostForm.Get("resource")})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "access_token": tok, "expires_in": secs, "ext_expires_in": secs})
	}
}

func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, known := s.tokens[tok]
		s.mu.Unlock()
		if !ok || !known || !s.now().Before(exp) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeODataError writes the FinOps OData error envelope with the real
// reason in innererror.message, as live systems do.
func writeODataError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": "", "message": "An error has occurred.",
		"innererror": map[string]any{"message": msg, "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataException", "stacktrace": ""}}})
}

func (s *Server) sign(name string, expiry int64) string {
	m := hmac.New(sha256.New, s.sasKey)
	fmt.Fprintf(m, "%s\n%d", name, expiry)
	return hex.EncodeToString(m.Sum(nil))
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func subtleEq(a, b []byte) bool { return hmac.Equal(a, b) }
