// Package access decides who may do what over HTTP: API tokens, the scopes
// they carry, and the principal a request authenticates as. The admin API
// asks it for admin and read; the event hub for publish and subscribe on
// topics.
//
// Scopes:
//
//	admin                  everything
//	read                   jobs, runs, deliveries, subscriptions (no changes)
//	publish:<pattern>      raise events on topics the pattern matches
//	subscribe:<pattern>    streams and subscriptions within the pattern
//
// Patterns are topic patterns: "/"-separated segments, "*" matches one
// segment, and a pattern matches its children ("transaction" matches
// "transaction/credit").
package access

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Scope names.
const (
	ScopeAdmin     = "admin"
	ScopeRead      = "read"
	ScopePublish   = "publish"
	ScopeSubscribe = "subscribe"
)

// Errors of Authenticate.
var (
	ErrNoToken      = errors.New("access: no bearer token")
	ErrUnknownToken = errors.New("access: unknown token")
)

// Token is a named token and its scopes, as configured ([[tokens]]) or
// created through the API.
type Token struct {
	Name   string   `koanf:"name" json:"name"`
	Token  string   `koanf:"token" secret:"true" json:"-"`
	Scopes []string `koanf:"scopes" json:"scopes"`
}

// ValidateScopes checks scope strings; the error names the first bad one.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return errors.New("at least one scope is required")
	}
	for _, s := range scopes {
		if _, err := parseScope(s); err != nil {
			return err
		}
	}
	return nil
}

type scope struct {
	kind    string
	pattern []string // publish and subscribe
}

func parseScope(s string) (scope, error) {
	kind, pattern, hasPattern := strings.Cut(s, ":")
	switch kind {
	case ScopeAdmin, ScopeRead:
		if hasPattern {
			return scope{}, fmt.Errorf("scope %q: %s takes no pattern", s, kind)
		}
		return scope{kind: kind}, nil
	case ScopePublish, ScopeSubscribe:
		if err := ValidPattern(pattern); err != nil {
			return scope{}, fmt.Errorf("scope %q: %w", s, err)
		}
		return scope{kind: kind, pattern: strings.Split(pattern, "/")}, nil
	}
	return scope{}, fmt.Errorf("scope %q: unknown; use admin, read, publish:<topic pattern> or subscribe:<topic pattern>", s)
}

// ValidPattern checks a topic pattern: 1–8 segments of [A-Za-z0-9_.-] or
// "*", at most 256 bytes.
func ValidPattern(p string) error { return validTopic(p, "topic pattern", true) }

// ValidTopic checks a topic: 1–8 segments of [A-Za-z0-9_.-], at most 256
// bytes.
func ValidTopic(t string) error { return validTopic(t, "topic", false) }

// validTopic checks t as what (named in errors), a "*" segment allowed
// when wildcard.
func validTopic(t, what string, wildcard bool) error {
	if t == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(t) > 256 {
		return fmt.Errorf("%s is %d bytes; at most 256", what, len(t))
	}
	segs := strings.Split(t, "/")
	if len(segs) > 8 {
		return fmt.Errorf("%s %q has %d segments; at most 8", what, t, len(segs))
	}
	for _, seg := range segs {
		if wildcard && seg == "*" {
			continue
		}
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%s %q: %w", what, t, err)
		}
	}
	return nil
}

func validSegment(seg string) error {
	if seg == "" {
		return errors.New("empty segment")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("segment %q holds %q; segments are [A-Za-z0-9_.-]", seg, c)
		}
	}
	return nil
}

// Principal is who a request authenticated as.
type Principal struct {
	Name   string
	scopes []scope
}

// NewPrincipal returns the principal of a token with scopes (invalid
// scopes are dropped; validate them first).
func NewPrincipal(name string, scopes []string) *Principal {
	p := &Principal{Name: name}
	for _, s := range scopes {
		if sc, err := parseScope(s); err == nil {
			p.scopes = append(p.scopes, sc)
		}
	}
	return p
}

func (p *Principal) has(kind string) bool {
	for _, s := range p.scopes {
		if s.kind == kind {
			return true
		}
	}
	return false
}

// Admin reports the admin scope.
func (p *Principal) Admin() bool { return p.has(ScopeAdmin) }

// CanRead reports read or admin.
func (p *Principal) CanRead() bool { return p.has(ScopeAdmin) || p.has(ScopeRead) }

// CanPublish reports whether p may raise an event on topic.
func (p *Principal) CanPublish(topic string) bool {
	return p.Admin() || p.covers(ScopePublish, strings.Split(topic, "/"))
}

// CanSubscribe reports whether p may receive every topic pattern matches:
// a subscribe scope's pattern covers it (or admin).
func (p *Principal) CanSubscribe(pattern string) bool {
	return p.Admin() || p.covers(ScopeSubscribe, strings.Split(pattern, "/"))
}

// CanReceive reports whether p may receive an event on topic (what a
// stream checks per event).
func (p *Principal) CanReceive(topic string) bool {
	return p.Admin() || p.covers(ScopeSubscribe, strings.Split(topic, "/"))
}

// SubscribePatterns lists the patterns of p's subscribe scopes.
func (p *Principal) SubscribePatterns() []string {
	var out []string
	for _, s := range p.scopes {
		if s.kind == ScopeSubscribe {
			out = append(out, strings.Join(s.pattern, "/"))
		}
	}
	return out
}

// covers: some scope of kind has a pattern that matches everything want
// matches: at most as many segments, each "*" or equal to want's (a "*" in
// want needs a "*").
func (p *Principal) covers(kind string, want []string) bool {
	for _, s := range p.scopes {
		if s.kind != kind || len(s.pattern) > len(want) {
			continue
		}
		ok := true
		for i, seg := range s.pattern {
			if seg != "*" && seg != want[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// MissingScope names the scope a refusal lacked, for a 403's message.
func MissingScope(kind, topicOrPattern string) string {
	if topicOrPattern == "" {
		return kind
	}
	return kind + ":" + topicOrPattern
}

// Hash is how tokens are kept and looked up: SHA-256 of the token. Tokens
// are random and long, so a fast hash is enough; lookup by hash does not
// compare secrets byte by byte.
func Hash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// Lookup finds a token by its hash elsewhere (the store's tokens); found
// false when there is none.
type Lookup func(r *http.Request, hash [32]byte) (name string, scopes []string, found bool, err error)

// Keyring authenticates requests against configured tokens and, on a
// miss, Lookup.
type Keyring struct {
	byHash map[[32]byte]*Principal
	Lookup Lookup
}

// NewKeyring returns a keyring of tokens (validated).
func NewKeyring(tokens []Token) (*Keyring, error) {
	k := &Keyring{byHash: map[[32]byte]*Principal{}}
	for _, t := range tokens {
		if t.Token == "" {
			return nil, fmt.Errorf("token %q: empty", t.Name)
		}
		if err := ValidateScopes(t.Scopes); err != nil {
			return nil, fmt.Errorf("token %q: %w", t.Name, err)
		}
		k.byHash[Hash(t.Token)] = NewPrincipal(t.Name, t.Scopes)
	}
	return k, nil
}

// Empty reports whether no token can ever authenticate (no configured
// token and no lookup): the API is then off.
func (k *Keyring) Empty() bool { return len(k.byHash) == 0 && k.Lookup == nil }

// BearerToken returns the request's token: Authorization: Bearer,
// X-VoltMX-Authorization (bare or Bearer), a WebSocket subprotocol
// "bearer.<token>", or, for GET only, an access_token query parameter
// (browsers' WebSocket and EventSource cannot set headers; the product's
// logs redact it, but proxies may not: prefer the others).
func BearerToken(r *http.Request) string {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	if v := r.Header.Get("X-VoltMX-Authorization"); v != "" {
		v, _ = strings.CutPrefix(v, "Bearer ")
		return strings.TrimSpace(v)
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "bearer."); ok {
				return v
			}
		}
	}
	if r.Method == http.MethodGet {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// Authenticate returns the request's principal.
func (k *Keyring) Authenticate(r *http.Request) (*Principal, error) {
	tok := BearerToken(r)
	if tok == "" {
		return nil, ErrNoToken
	}
	return k.ByHash(r, Hash(tok))
}

// ByHash returns the principal of the token whose SHA-256 is h
// (ErrUnknownToken when there is none): a web page session keeps the hash
// of its token, so that deleting the token ends the session.
func (k *Keyring) ByHash(r *http.Request, h [32]byte) (*Principal, error) {
	if p, ok := k.byHash[h]; ok {
		return p, nil
	}
	if k.Lookup != nil {
		name, scopes, found, err := k.Lookup(r, h)
		if err != nil {
			return nil, err
		}
		if found {
			return NewPrincipal(name, scopes), nil
		}
	}
	return nil, ErrUnknownToken
}

type principalKey struct{}

// WithPrincipal returns r carrying p, as Require would pass it on.
func WithPrincipal(r *http.Request, p *Principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// PrincipalOf returns the principal Require authenticated the request as.
func PrincipalOf(r *http.Request) *Principal {
	return r.Context().Value(principalKey{}).(*Principal)
}

// Require passes requests with a known token to next, with their principal
// (PrincipalOf); others get 401 (no or unknown token, with a
// WWW-Authenticate challenge) or 503 (the token store unreachable), as
// JSON {"error": …}.
func (k *Keyring) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := k.Authenticate(r)
		switch {
		case errors.Is(err, ErrNoToken), errors.Is(err, ErrUnknownToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="exportbridge"`)
			writeError(w, http.StatusUnauthorized, "missing or unknown bearer token")
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "checking the token: "+err.Error())
			return
		}
		next.ServeHTTP(w, WithPrincipal(r, p))
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
