// Package redact makes text that can reach an output (a log line, an error,
// a stored last_error, an API answer, the CLI) safe to show: credentials in
// URLs are hidden and upstream strings are cut to a bounded excerpt. It is
// the product's one redactor; every URL that may be printed passes through
// URL, Error or String.
package redact

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Mask replaces every hidden value.
const Mask = "REDACTED"

// sensitiveParams are query parameters whose values are credentials: Azure
// SAS signatures, function keys, our own download signatures, tokens.
var sensitiveParams = map[string]bool{
	"sig": true, "signature": true, "code": true, "token": true, "access_token": true,
	"client_secret": true, "key": true, "api-key": true, "apikey": true, "secret": true,
	"password": true, "skoid": true, "sktid": true, "auth": true, "apitoken": true,
}

// sensitiveParts mark a parameter as a credential wherever they appear in
// its name (x-api-key, subscription-key, id_token, webhook_secret, …).
var sensitiveParts = []string{"key", "token", "secret", "sig", "pass", "auth", "credential"}

func sensitive(param string) bool {
	p := strings.ToLower(param)
	if sensitiveParams[p] {
		return true
	}
	for _, s := range sensitiveParts {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// URL returns raw with its userinfo and the values of credential-bearing
// query parameters replaced by Mask. Unparseable input is reduced to its
// part before '?' and '@'.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		before, _, hadQuery := strings.Cut(raw, "?")
		if i := strings.LastIndexByte(before, '@'); i >= 0 {
			if j := strings.Index(before, "://"); j >= 0 && j < i {
				before = before[:j+3] + Mask + before[i:]
			}
		}
		if hadQuery {
			before += "?" + Mask
		}
		return before
	}
	changed := false
	if u.User != nil {
		u.User = url.User(Mask)
		changed = true
	}
	if u.RawQuery != "" {
		q := u.Query()
		redacted := false
		for k := range q {
			if sensitive(k) {
				q[k] = []string{Mask}
				redacted = true
			}
		}
		if redacted {
			u.RawQuery = q.Encode()
			changed = true
		}
	}
	if !changed {
		return raw // keep the text as it was written
	}
	return u.String()
}

// String redacts every URL inside free text (an error message, a log line).
// A URL runs from its scheme to the next space, quote or angle bracket.
func String(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		start := i
		for start > 0 && isSchemeByte(rest[start-1]) {
			start--
		}
		end := i + 3
		for end < len(rest) && !isURLEnd(rest[end]) {
			end++
		}
		b.WriteString(rest[:start])
		if start == i { // "://" with no scheme: not a URL
			b.WriteString(rest[i:end])
		} else {
			b.WriteString(URL(rest[start:end]))
		}
		rest = rest[end:]
	}
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isURLEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '"', '\'', '<', '>', '`', '\\':
		return true
	}
	return false
}

// Error returns err with every URL in its text redacted. A *url.Error (what
// net/http returns for every transport failure) keeps its type, so
// errors.As and timeouts still work on the result.
func Error(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) && err == error(ue) {
		cp := *ue
		cp.URL = URL(ue.URL)
		return &cp
	}
	msg := err.Error()
	if red := String(msg); red != msg {
		return &redacted{msg: red, err: err}
	}
	return err
}

// redacted carries a cleaned message and keeps the chain for errors.Is/As.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Excerpt cuts an upstream string (a FinOps answer, a subscriber's body, an
// id from a message) to at most max bytes on a rune boundary, marking the cut
// with "…" and the original length, so that a hostile 50 MB value cannot
// reach a log line or a stored field whole.
func Excerpt(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// Writer returns a writer that redacts every URL in what passes through it
// before handing it to w. The process logger writes through one, so no log
// line can carry a credential whichever field or message a URL reached.
// Each Write is one log event, as zerolog writes them.
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct{ w io.Writer }

func (r *writer) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte("://")) {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
