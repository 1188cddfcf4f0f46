// Package console is the operations page the daemon serves at /: jobs and
// their runs, deliveries with their attempts and replay, subscriptions,
// readiness and the newest events, for an operator signed in with an
// admin or read token. It renders on the server (html/template, embedded)
// and reads and acts only through the admin API's handlers, in process, as
// the signed-in token: the page shows what the API answers and may do only
// what the token may. htmx (vendored) makes its links and forms swap the
// page in place; without JavaScript they work as plain links and forms.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/conf"
	"github.com/exportbridge/exportbridge/internal/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Config is [console].
type Config struct {
	// SessionTTL is how long a sign-in lasts; the store forgets the session
	// then. Default 12h.
	SessionTTL time.Duration `koanf:"session_ttl"`
}

// WithDefaults fills what was left unset.
func (c Config) WithDefaults() Config {
	if c.SessionTTL == 0 {
		c.SessionTTL = 12 * time.Hour
	}
	return c
}

// Validate names the keys (relative to [console]) that are wrong.
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.SessionTTL < time.Minute {
		ps.Add("session_ttl", "must be at least 1m, got %s", c.SessionTTL)
	}
	return ps
}

// Sessions keeps the page's sessions (the store).
type Sessions interface {
	CreateSession(ctx context.Context, s store.Session) error
	SessionByHash(ctx context.Context, hash []byte, now time.Time) (store.Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
}

// Console serves the page.
type Console struct {
	cfg      Config
	api      http.Handler // the admin API's routes, for requests carrying their principal
	stream   http.Handler // the hub's SSE stream, likewise; nil: no live view
	keys     *access.Keyring
	sessions Sessions
	// secure marks cookies Secure (public_url is https).
	secure bool
	log    zerolog.Logger
	now    func() time.Time
	pages  map[string]*template.Template
}

// Options are what New needs besides its config.
type Options struct {
	API      http.Handler
	Stream   http.Handler
	Keys     *access.Keyring
	Sessions Sessions
	// PublicURL is where operators reach the daemon; https makes the
	// session cookie Secure.
	PublicURL string
	Log       zerolog.Logger
}

// New returns the console.
func New(cfg Config, opt Options) *Console {
	c := &Console{cfg: cfg.WithDefaults(), api: opt.API, stream: opt.Stream, keys: opt.Keys, sessions: opt.Sessions,
		secure: strings.HasPrefix(opt.PublicURL, "https://"), log: opt.Log.With().Str("component", "console").Logger(), now: time.Now,
		pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if page == "layout" {
			continue
		}
		c.pages[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", name))
	}
	return c
}

// Register adds the page's routes to mux.
func (c *Console) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", c.headers(http.StripPrefix("/static/", cacheForever(http.FileServerFS(static)))))
	mux.Handle("GET /login", c.headers(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST /login", c.headers(http.HandlerFunc(c.login)))
	mux.Handle("POST /logout", c.headers(c.signedIn(c.logout)))
	mux.Handle("GET /{$}", c.headers(c.signedIn(c.overview)))
	mux.Handle("POST /jobs/{name}/run", c.headers(c.signedIn(c.runJob)))
	mux.Handle("GET /deliveries", c.headers(c.signedIn(c.deliveries)))
	mux.Handle("GET /deliveries/{id}", c.headers(c.signedIn(c.delivery)))
	mux.Handle("POST /deliveries/{id}/replay", c.headers(c.signedIn(c.replayOne)))
	mux.Handle("GET /replay", c.headers(c.signedIn(c.confirmReplay)))
	mux.Handle("POST /replay", c.headers(c.signedIn(c.replayMatching)))
	mux.Handle("GET /subscriptions", c.headers(c.signedIn(c.subscriptions)))
	mux.Handle("POST /subscriptions", c.headers(c.signedIn(c.createSubscription)))
	mux.Handle("GET /subscriptions/{name}/edit", c.headers(c.signedIn(c.editSubscription)))
	mux.Handle("POST /subscriptions/{name}", c.headers(c.signedIn(c.updateSubscription)))
	mux.Handle("POST /subscriptions/{name}/{verb}", c.headers(c.signedIn(c.pauseOrResume)))
	mux.Handle("GET /subscriptions/{name}/delete", c.headers(c.signedIn(c.confirmDelete)))
	mux.Handle("POST /subscriptions/{name}/delete", c.headers(c.signedIn(c.deleteSubscription)))
	mux.Handle("GET /live", c.headers(c.signedIn(c.live)))
	mux.Handle("GET /live/events", c.signedIn(c.liveEvents))
}

// headers sets what every page answers with: no framing, no sniffing,
// scripts and styles from this origin only.
func (c *Console) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// cacheForever: static files are named by their version.
func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		h.ServeHTTP(w, r)
	})
}

// apiAnswer is what the admin API answered a call.
type apiAnswer struct {
	status int
	body   []byte
}

// failed is the API's refusal or error, as its message; "" when it
// succeeded.
func (a apiAnswer) failed() string {
	if a.status < 300 {
		return ""
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(a.body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(a.body))
}

// call asks the admin API as the session's token; out receives a
// successful answer.
func (c *Console) call(r *http.Request, s *session, method, path string, q url.Values, body any, out any) apiAnswer {
	u := path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(r.Context(), method, u, rd)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	c.api.ServeHTTP(rec, access.WithPrincipal(req, s.p))
	ans := apiAnswer{status: rec.Code, body: rec.Body.Bytes()}
	if out != nil && ans.status < 300 {
		if err := json.Unmarshal(ans.body, out); err != nil {
			return apiAnswer{status: http.StatusInternalServerError, body: []byte(fmt.Sprintf(`{"error":%q}`, "decoding the API's answer: "+err.Error()))}
		}
	}
	return ans
}

// render writes page with data, in the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, page string, data map[string]any) {
	t, ok := c.pages[page]
	if !ok {
		http.Error(w, "no such page: "+page, http.StatusInternalServerError)
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Page"] = page
	if s != nil {
		data["Session"] = s
		data["CSRF"] = s.csrf
		data["Admin"] = s.p.Admin()
		data["Who"] = s.p.Name
	}
	if _, ok := data["Flash"]; !ok {
		data["Flash"] = takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		c.log.Error().Err(err).Str("page", page).Msg("rendering a page failed")
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// problem renders a page that says what went wrong.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, r, s, status, "problem", map[string]any{"Title": http.StatusText(status), "Message": msg})
}

const flashCookie = "exportbridge_flash"

// flash keeps a message for the next page (after a redirect).
func (c *Console) flash(w http.ResponseWriter, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60, HttpOnly: true,
		Secure: c.secure, SameSite: http.SameSiteStrictMode})
}

func takeFlash(w http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1})
	msg, _ := url.QueryUnescape(ck.Value)
	return msg
}

// seeOther redirects after a POST.
func seeOther(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"when": func(v any) string {
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case *time.Time:
			if x != nil {
				t = *x
			}
		}
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ms":   func(n int64) string { return (time.Duration(n) * time.Millisecond).String() },
	"join": strings.Join,
	"excerpt": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
	"pretty": func(raw json.RawMessage) string {
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") != nil {
			return string(raw)
		}
		return b.String()
	},
	"query": func(kv ...string) template.URL {
		q := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				q.Set(kv[i], kv[i+1])
			}
		}
		return template.URL(q.Encode())
	},
}
