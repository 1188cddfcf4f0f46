package finops

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// origin is scheme://host:port with the port made explicit, so that
// "https://h" and "https://h:443" compare equal.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// trustedOrigins are where the bearer token may go: base_url, and
// download_hosts with base_url's scheme.
func trustedOrigins(cfg Config) map[string]bool {
	out := map[string]bool{}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return out
	}
	out[origin(base)] = true
	for _, h := range cfg.DownloadHosts {
		out[origin(&url.URL{Scheme: base.Scheme, Host: h})] = true
	}
	return out
}

// checkTokenTarget refuses a URL outside the trusted origins before any
// request carrying the token is made.
func (c *Client) checkTokenTarget(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: unparseable URL", ErrForeignHost)
	}
	if !c.trusted[origin(u)] {
		return fmt.Errorf("%w: %s is not base_url's host (add it to download_hosts to allow it)", ErrForeignHost, origin(u))
	}
	return nil
}

// checkRedirect follows a redirect only within the origin of the request
// that started it, when that request carried the token: FinOps API calls are
// never followed to another host. Blob downloads (no token) follow as usual.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects")
	}
	first := via[0]
	if first.Header.Get("Authorization") != "" && origin(req.URL) != origin(first.URL) {
		return fmt.Errorf("%w: redirect to %s", ErrForeignHost, origin(req.URL))
	}
	return nil
}
