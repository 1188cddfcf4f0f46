package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/store"
)

// client is a browser without JavaScript: cookies, no redirects followed.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, header map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestSessionsAndForms: signing in needs a known admin or read token; the
// session cookie is HttpOnly and SameSite=Strict; a POST without the
// session's CSRF token, or from another origin, changes nothing; pages
// forbid framing and foreign scripts; the page works without JavaScript.
func TestSessionsAndForms(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.runJob(t)
	d.waitCount(t, store.StateDead, 3)
	c := client(t)

	resp, _ := do(t, c, "GET", d.base+"/deliveries?state=dead", nil, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/login?next=%2Fdeliveries%3Fstate%3Ddead", resp.Header.Get("Location"))

	for _, tc := range []struct {
		token  string
		status int
		says   string
	}{
		{"", http.StatusBadRequest, "enter a token"},
		{"wrong-token", http.StatusUnauthorized, "unknown token"},
	} {
		resp, body := do(t, c, "POST", d.base+"/login", url.Values{"token": {tc.token}}, nil)
		require.Equal(t, tc.status, resp.StatusCode)
		require.Contains(t, body, tc.says)
		require.Empty(t, resp.Cookies())
	}
	resp, _ = do(t, c, "POST", d.base+"/login", url.Values{"token": {adminToken}, "next": {"https://evil.example/"}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/", resp.Header.Get("Location"), "no redirect off the site")
	ck := resp.Cookies()[0]
	require.Equal(t, "exportbridge_session", ck.Name)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	require.Positive(t, ck.MaxAge)

	resp, body := do(t, c, "GET", d.base+"/", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Contains(t, body, `<form method="post" action="/jobs/customer-groups/run">`, "actions are plain forms")
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m)
	csrf := m[1]

	// Forged: no CSRF token, a wrong one, or another site's origin.
	for _, tc := range []struct {
		form   url.Values
		header map[string]string
	}{
		{url.Values{}, nil},
		{url.Values{"csrf": {"forged"}}, nil},
		{url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
	} {
		resp, body := do(t, c, "POST", d.base+"/subscriptions/flow/pause", tc.form, tc.header)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	}
	resp, body = do(t, c, "GET", d.base+"/subscriptions", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, body, "paused", "no forged POST paused it")

	// The real form, without JavaScript: POST, then 303 to the list.
	resp, _ = do(t, c, "POST", d.base+"/subscriptions/flow/pause", url.Values{"csrf": {csrf}}, map[string]string{"Origin": d.base})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body = do(t, c, "GET", d.base+"/subscriptions", nil, nil)
	require.Contains(t, body, "flow: paused")

	// Replay all matching: the confirmation states the count first.
	_, body = do(t, c, "GET", d.base+"/replay?state=dead&job=customer-groups", nil, nil)
	require.Contains(t, body, "3 dead deliveries match, job = customer-groups.")
	require.Contains(t, body, "Replay 3 deliveries")

	// A bad filter is named, not a blank page.
	resp, body = do(t, c, "GET", d.base+"/deliveries?since=yesterday", nil, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, `since &#34;yesterday&#34;`)
	resp, body = do(t, c, "GET", d.base+"/deliveries/999999", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, "no such delivery")

	// Signed out, the cookie no longer opens anything.
	resp, _ = do(t, c, "POST", d.base+"/logout", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, _ = do(t, c, "GET", d.base+"/", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/login"))
}

// TestCreateAndEditASubscription through the page's forms: the generated
// secret is shown once; a bad filter is refused naming its position; an
// edit keeps what it leaves empty; config subscriptions are not editable.
func TestCreateAndEditASubscription(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	c := client(t)
	resp, _ := do(t, c, "POST", d.base+"/login", url.Values{"token": {adminToken}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body := do(t, c, "GET", d.base+"/subscriptions", nil, nil)
	csrf := csrfField.FindStringSubmatch(body)[1]

	resp, body = do(t, c, "POST", d.base+"/subscriptions", url.Values{"csrf": {csrf}, "name": {"sales"}, "url": {"https://hooks.example.com/sales"},
		"topics": {"dataexport/customer-groups"}, "filter": {"event.EntityName =="}}, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, `id="form-error"`)
	require.Contains(t, body, "1:", "the CEL error's position")
	require.Contains(t, body, `value="https://hooks.example.com/sales"`, "the form keeps what was typed")

	resp, body = do(t, c, "POST", d.base+"/subscriptions", url.Values{"csrf": {csrf}, "name": {"sales"}, "url": {"https://hooks.example.com/sales"},
		"topics": {"dataexport/customer-groups"}, "filter": {"event.EntityName == 'Currencies'"}, "max_per_second": {"5"}}, nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	secret := regexp.MustCompile(`<code id="secret">(whsec_[^<]+)</code>`).FindStringSubmatch(body)
	require.NotNil(t, secret, "the generated secret is shown once")
	_, body = do(t, c, "GET", d.base+"/subscriptions", nil, nil)
	require.NotContains(t, body, secret[1], "and only once")
	require.Contains(t, body, `href="/subscriptions/sales/edit"`)
	require.NotContains(t, body, `href="/subscriptions/flow/edit"`, "config subscriptions are not editable here")
	resp, _ = do(t, c, "GET", d.base+"/subscriptions/flow/edit", nil, nil)
	require.Equal(t, http.StatusConflict, resp.StatusCode)

	resp, _ = do(t, c, "POST", d.base+"/subscriptions/sales", url.Values{"csrf": {csrf}, "url": {""}, "topics": {"dataexport/customer-groups"},
		"filter": {""}, "timeout": {"5s"}, "max_per_second": {"2"}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	var sub struct {
		URL          string  `json:"url"`
		Filter       string  `json:"filter"`
		Timeout      string  `json:"timeout"`
		MaxPerSecond float64 `json:"max_per_second"`
	}
	status, body := apiCall(t, d, "GET", "/api/subscriptions/sales", "")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &sub))
	require.Equal(t, "https://hooks.example.com/sales", sub.URL, "an empty URL keeps it")
	require.Empty(t, sub.Filter, "the filter was cleared")
	require.Equal(t, "5s", sub.Timeout)
	require.InDelta(t, 2, sub.MaxPerSecond, 0)
}

// apiCall calls the daemon's API as the admin token, outside any session,
// and returns the status and the body.
func apiCall(t *testing.T, d *daemon, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// apiStatus is apiCall's status.
func apiStatus(t *testing.T, d *daemon, method, path, body string) int {
	t.Helper()
	status, _ := apiCall(t, d, method, path, body)
	return status
}

// TestDeleteASubscriptionSaysWhatWaits: deleting a runtime subscription
// from the page asks first, counting the deliveries still waiting (kept,
// unsent); a config subscription cannot be deleted here; a read session
// sees no button, and its POST is refused by the API.
func TestDeleteASubscriptionSaysWhatWaits(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	require.Equal(t, http.StatusCreated, apiStatus(t, d, "POST", "/api/subscriptions", `{"name":"orders-hook","url":"https://hooks.example.com/orders","topics":["orders"]}`))
	require.Equal(t, http.StatusOK, apiStatus(t, d, "POST", "/api/subscriptions/orders-hook/pause", ""))
	require.Equal(t, http.StatusAccepted, apiStatus(t, d, "POST", "/api/events", `{"events":[{"topic":"orders","data":{"n":1}},{"topic":"orders","data":{"n":2}}]}`))

	reader := client(t)
	resp, _ := do(t, reader, "POST", d.base+"/login", url.Values{"token": {readToken}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body := do(t, reader, "GET", d.base+"/subscriptions/orders-hook/delete", nil, nil)
	require.NotContains(t, body, `id="confirm-delete"`, "a read session sees no button")
	readCSRF := csrfField.FindStringSubmatch(body)[1]
	resp, _ = do(t, reader, "POST", d.base+"/subscriptions/orders-hook/delete", url.Values{"csrf": {readCSRF}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, http.StatusOK, apiStatus(t, d, "GET", "/api/subscriptions/orders-hook", ""), "the API refused the read session")

	c := client(t)
	resp, _ = do(t, c, "POST", d.base+"/login", url.Values{"token": {adminToken}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body = do(t, c, "GET", d.base+"/subscriptions", nil, nil)
	require.Contains(t, body, `href="/subscriptions/orders-hook/delete"`)
	require.NotContains(t, body, `href="/subscriptions/flow/delete"`, "config subscriptions are not deleted here")
	resp, _ = do(t, c, "GET", d.base+"/subscriptions/flow/delete", nil, nil)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	resp, _ = do(t, c, "GET", d.base+"/subscriptions/nope/delete", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, body = do(t, c, "GET", d.base+"/subscriptions/orders-hook/delete", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Regexp(t, `id="waiting">2 of its deliveries are waiting`, body)
	require.Contains(t, body, `id="confirm-delete"`)
	csrf := csrfField.FindStringSubmatch(body)[1]
	resp, _ = do(t, c, "POST", d.base+"/subscriptions/orders-hook/delete", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body = do(t, c, "GET", d.base+"/subscriptions", nil, nil)
	require.Contains(t, body, "orders-hook: deleted")
	require.NotContains(t, body, `data-subscription="orders-hook"`)
	require.Equal(t, http.StatusNotFound, apiStatus(t, d, "GET", "/api/subscriptions/orders-hook", ""))

	// Created again under the name, it sends what waited.
	var got atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { got.Add(1); w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(rcv.Close)
	require.Equal(t, http.StatusCreated, apiStatus(t, d, "POST", "/api/subscriptions", `{"name":"orders-hook","url":"`+rcv.URL+`","topics":["orders"]}`))
	require.Eventually(t, func() bool { return got.Load() == 2 }, 10*time.Second, 10*time.Millisecond, "the waiting deliveries go out")
}

// TestStaticFilesAndAPIStayPut: the page's paths leave the API, files,
// health and metrics where they were.
func TestStaticFilesAndAPIStayPut(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	c := client(t)
	resp, body := do(t, c, "GET", d.base+"/static/htmx-2.0.11.min.js", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "htmx")
	resp, _ = do(t, c, "GET", d.base+"/api/jobs", nil, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the API still wants a bearer token")
	resp, _ = do(t, c, "GET", d.base+"/healthz", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = do(t, c, "GET", d.base+"/no/such/page", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
