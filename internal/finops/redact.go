package finops

import (
	"errors"
	"net/url"
	"strings"
)

// sensitiveParams are query parameters whose values are credentials: Azure
// SAS signatures, function keys, our own download signatures, tokens.
var sensitiveParams = map[string]bool{
	"sig": true, "signature": true, "code": true, "token": true, "access_token": true,
	"client_secret": true, "key": true, "api-key": true, "apikey": true, "secret": true,
	"password": true, "skoid": true, "sktid": true,
}

// RedactURL returns raw with the values of credential-bearing query
// parameters and any userinfo password replaced, so it is safe for logs and
// error strings. Unparseable input is reduced to its part before '?'.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		before, _, _ := strings.Cut(raw, "?")
		return before + "?REDACTED"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	if u.RawQuery == "" {
		return u.String()
	}
	q := u.Query()
	changed := false
	for k := range q {
		if sensitiveParams[strings.ToLower(k)] {
			q[k] = []string{"REDACTED"}
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func redactErr(err error) error { return RedactError(err) }

// RedactError rewrites the URL inside a *url.Error (which net/http puts in
// every transport error) so the error string carries no secrets.
func RedactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		cp := *ue
		cp.URL = RedactURL(ue.URL)
		return &cp
	}
	return err
}
