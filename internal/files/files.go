// Package files stores converted files, mints time-limited signed download
// URLs for them, serves them, and deletes them after the retention period.
//
// A URL is public_url/files/{id}/{name}?expires=<unix>&signature=<hex>; the
// signature is HMAC-SHA256 over id, name and expiry, so a link cannot be
// stretched or pointed at another file. Links are checked in constant time.
package files

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Sentinel errors of Verify.
var (
	ErrBadSignature = errors.New("files: bad signature")
	ErrExpired      = errors.New("files: link expired")
)

// Signer mints and checks download URLs.
type Signer struct {
	key       []byte
	publicURL string
	ttl       time.Duration
}

// NewSigner returns a Signer; publicURL is the base of every link.
func NewSigner(key []byte, publicURL string, ttl time.Duration) *Signer {
	return &Signer{key: key, publicURL: publicURL, ttl: ttl}
}

// TTL is the lifetime of minted links.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Link is URL for an artifact: a link to exportbridge's own download
// handler.
func (s *Signer) Link(_ context.Context, a store.Artifact, expires time.Time) (string, error) {
	return s.URL(a.ID, a.Name, expires), nil
}

func (s *Signer) sign(id, name string, expires int64) []byte {
	m := hmac.New(sha256.New, s.key)
	// Length-prefixed fields: no two (id, name, expires) triples sign alike.
	fmt.Fprintf(m, "%d:%s|%d:%s|%d", len(id), id, len(name), name, expires)
	return m.Sum(nil)
}

// URL returns a link to artifact id named name, valid until expires.
func (s *Signer) URL(id, name string, expires time.Time) string {
	exp := expires.Unix()
	q := url.Values{"expires": {strconv.FormatInt(exp, 10)}, "signature": {hex.EncodeToString(s.sign(id, name, exp))}}
	return s.publicURL + "/files/" + url.PathEscape(id) + "/" + url.PathEscape(name) + "?" + q.Encode()
}

// Verify checks a link's signature, then its expiry.
func (s *Signer) Verify(id, name, expires, signature string, now time.Time) error {
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	sig, err := hex.DecodeString(signature)
	if err != nil || !hmac.Equal(sig, s.sign(id, name, exp)) {
		return ErrBadSignature
	}
	if now.Unix() >= exp {
		return ErrExpired
	}
	return nil
}

// Settings is the part of the store that keeps a generated signing key.
type Settings interface {
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)
}

const signingKeySetting = "files.signing_key"

// SigningKey returns the configured key, or the one generated once and kept
// in settings, so links survive restarts without configuration.
func SigningKey(ctx context.Context, configured string, settings Settings) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	v, err := settings.SetSettingIfAbsent(ctx, signingKeySetting, base64.StdEncoding.EncodeToString(b))
	if err != nil {
		return nil, fmt.Errorf("files: signing key: %w", err)
	}
	return base64.StdEncoding.DecodeString(v)
}

// NewID returns a random artifact id (URL-safe, 128 bits).
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
