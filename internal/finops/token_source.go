package finops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/exportbridge/exportbridge/internal/redact"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenEarly refreshes a token this long before it expires, as the
// Recurring Integrations Scheduler does, so no request leaves with a token
// that expires in flight.
const tokenEarly = 60 * time.Second

// tokenSource caches a client-credentials token and lets the client drop it
// after a 401 (oauth2.ReuseTokenSource cannot be told to forget a token).
type tokenSource struct {
	cfg  clientcredentials.Config
	http *http.Client
	now  func() time.Time

	mu     sync.Mutex
	tok    *oauth2.Token
	expiry time.Time // on t.now's clock; zero when the token has no expiry
}

func newTokenSource(c Config, hc *http.Client, now func() time.Time) *tokenSource {
	cc := clientcredentials.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		TokenURL:     c.TokenURL,
		// Entra ID accepts both; the documented form puts the secret in the body.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	if c.IsV1Token() {
		cc.EndpointParams = url.Values{"resource": {c.BaseURL}}
	} else {
		cc.Scopes = []string{c.Scope}
	}
	return &tokenSource{cfg: cc, http: hc, now: now}
}

// token returns a valid access token, fetching one when none is cached or the
// cached one expires within tokenEarly.
func (t *tokenSource) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && (t.expiry.IsZero() || t.now().Add(tokenEarly).Before(t.expiry)) {
		return t.tok.AccessToken, nil
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, t.http)
	tok, err := t.cfg.Token(ctx)
	if err != nil {
		return "", tokenError(err)
	}
	t.tok = tok
	t.expiry = time.Time{}
	if !tok.Expiry.IsZero() {
		// x/oauth2 stamps Expiry with the wall clock; carry the lifetime over
		// to this source's clock (the same one unless a test injects another).
		t.expiry = t.now().Add(time.Until(tok.Expiry))
	}
	return tok.AccessToken, nil
}

// invalidate forgets the cached token if it is still the one that was refused.
func (t *tokenSource) invalidate(refused string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.tok.AccessToken == refused {
		t.tok = nil
	}
}

// TokenError is a failure to obtain an access token.
type TokenError struct {
	StatusCode int // 0 when the endpoint was not reached
	Err        error
}

func (e *TokenError) Error() string { return "finops token: " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// retryable: a token endpoint that is down or overloaded may come back; a
// refused client secret will not.
func (e *TokenError) retryable() bool {
	return e.StatusCode == 0 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorDescription
		if msg == "" {
			msg = re.ErrorCode
		}
		if msg == "" {
			_, msg = parseErrorBody(re.Body)
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &TokenError{StatusCode: status, Err: fmt.Errorf("HTTP %d: %s", status, msg)}
	}
	return &TokenError{Err: redact.Error(err)}
}
