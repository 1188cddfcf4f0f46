package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/store"
)

// sessionCookie holds the session id; the store keeps only its hash.
const sessionCookie = "exportbridge_session"

// session is a signed-in operator: the token's principal (looked up again
// on every request, so a deleted token signs its sessions out) and the
// CSRF token its forms carry.
type session struct {
	p    *access.Principal
	csrf string
	hash []byte
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// current returns the request's session, or nil.
func (c *Console) current(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	h := hashOf(ck.Value)
	st, err := c.sessions.SessionByHash(r.Context(), h, c.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := c.keys.ByHash(r, [32]byte(st.TokenHash))
	if errors.Is(err, access.ErrUnknownToken) {
		return nil, nil // the token was deleted or its config entry removed
	}
	if err != nil {
		return nil, err
	}
	return &session{p: p, csrf: st.CSRF, hash: h}, nil
}

// signedIn passes requests with a session to h; others go to the sign-in
// page (GET) or are refused (401). POSTs must carry the session's CSRF
// token and, when the browser says where they come from, come from here.
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.current(r)
		if err != nil {
			c.problem(w, r, nil, http.StatusServiceUnavailable, "cannot read the session from the store: "+err.Error())
			return
		}
		if s == nil {
			if r.Method == http.MethodGet {
				seeOther(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
				return
			}
			c.problem(w, r, nil, http.StatusUnauthorized, "sign in first")
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				c.problem(w, r, s, http.StatusForbidden, "the form came from another site")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				c.problem(w, r, s, http.StatusForbidden, "the form is stale or forged (no valid CSRF token): reload the page and try again")
				return
			}
		}
		h(w, r, s)
	})
}

// sameOrigin: a browser's Origin (or, lacking it, Referer) names this
// host. Requests without either (curl, old browsers) rely on the CSRF
// token alone.
func sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return true
	}
	u, err := url.Parse(from)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, http.StatusOK, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps redirects after sign-in on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// login starts a session for a valid admin or read token.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		c.render(w, r, nil, http.StatusForbidden, "login", map[string]any{"Next": next, "Error": "the form came from another site"})
		return
	}
	tok := strings.TrimSpace(r.PostFormValue("token"))
	refuse := func(status int, msg string) {
		c.log.Info().Str("remote", r.RemoteAddr).Str("reason", msg).Msg("sign-in refused")
		c.render(w, r, nil, status, "login", map[string]any{"Next": next, "Error": msg})
	}
	if tok == "" {
		refuse(http.StatusBadRequest, "enter a token")
		return
	}
	h := access.Hash(tok)
	p, err := c.keys.ByHash(r, h)
	switch {
	case errors.Is(err, access.ErrUnknownToken):
		refuse(http.StatusUnauthorized, "unknown token")
		return
	case err != nil:
		refuse(http.StatusServiceUnavailable, "checking the token: "+err.Error())
		return
	case !p.CanRead():
		refuse(http.StatusForbidden, "token "+p.Name+" has neither the admin nor the read scope")
		return
	}
	id, now := randomToken(), c.now()
	if err := c.sessions.CreateSession(r.Context(), store.Session{Hash: hashOf(id), TokenHash: h[:], CSRF: randomToken(),
		CreatedAt: now, ExpiresAt: now.Add(c.cfg.SessionTTL)}); err != nil {
		refuse(http.StatusServiceUnavailable, "storing the session: "+err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: int(c.cfg.SessionTTL.Seconds()), HttpOnly: true,
		Secure: c.secure, SameSite: http.SameSiteStrictMode})
	c.log.Info().Str("token", p.Name).Msg("signed in")
	seeOther(w, r, next)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.sessions.DeleteSession(r.Context(), s.hash); err != nil {
		c.problem(w, r, s, http.StatusServiceUnavailable, "ending the session: "+err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	seeOther(w, r, "/login")
}
