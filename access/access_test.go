package access_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/access"
)

func TestScopes(t *testing.T) {
	t.Parallel()
	p := access.NewPrincipal("p", []string{"publish:transaction", "publish:chain/*/blocks", "subscribe:orders/*"})
	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"publish child", p.CanPublish("transaction/credit"), true},
		{"publish itself", p.CanPublish("transaction"), true},
		{"publish sibling", p.CanPublish("transactions"), false},
		{"publish wildcard", p.CanPublish("chain/eth/blocks/7"), true},
		{"publish wildcard other", p.CanPublish("chain/eth/txs"), false},
		{"subscribe within", p.CanSubscribe("orders/eu"), true},
		{"subscribe wildcard within", p.CanSubscribe("orders/*"), true},
		{"subscribe parent of pattern", p.CanSubscribe("orders"), false},
		{"receive", p.CanReceive("orders/eu/1"), true},
		{"receive outside", p.CanReceive("orders"), false},
		{"not read", p.CanRead(), false},
		{"not admin", p.Admin(), false},
		{"admin can all", access.NewPrincipal("a", []string{"admin"}).CanSubscribe("x/y"), true},
		{"read reads", access.NewPrincipal("r", []string{"read"}).CanRead(), true},
		{"read does not publish", access.NewPrincipal("r", []string{"read"}).CanPublish("x"), false},
	} {
		require.Equal(t, c.want, c.got, c.name)
	}
	for _, bad := range []string{"", "root", "publish", "publish:", "publish:a//b", "read:x", "subscribe:a b"} {
		require.Error(t, access.ValidateScopes([]string{bad}), bad)
	}
}

func TestBearerTokenSources(t *testing.T) {
	t.Parallel()
	k, err := access.NewKeyring([]access.Token{{Name: "n", Token: "tok-0123456789abcdef", Scopes: []string{"read"}}})
	require.NoError(t, err)
	for _, c := range []struct {
		name   string
		method string
		set    func(*http.Request)
		ok     bool
	}{
		{"authorization", "POST", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-0123456789abcdef") }, true},
		{"volt mx", "POST", func(r *http.Request) { r.Header.Set("X-VoltMX-Authorization", "tok-0123456789abcdef") }, true},
		{"subprotocol", "GET", func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Protocol", "exportbridge, bearer.tok-0123456789abcdef")
		}, true},
		{"query on GET", "GET", func(r *http.Request) { r.URL.RawQuery = "access_token=tok-0123456789abcdef" }, true},
		{"query on POST", "POST", func(r *http.Request) { r.URL.RawQuery = "access_token=tok-0123456789abcdef" }, false},
		{"wrong", "GET", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, false},
		{"none", "GET", func(*http.Request) {}, false},
	} {
		r := httptest.NewRequest(c.method, "/api/stream", nil)
		c.set(r)
		p, err := k.Authenticate(r)
		if c.ok {
			require.NoError(t, err, c.name)
			require.Equal(t, "n", p.Name)
		} else {
			require.Error(t, err, c.name)
		}
	}
}

func FuzzValidTopic(f *testing.F) {
	for _, s := range []string{"a/b", "a//b", "", "*", "x/*/y", "a b", "dataexport/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := access.ValidTopic(s)
		if err == nil {
			require.NoError(t, access.ValidPattern(s), "a valid topic is a valid pattern")
			require.LessOrEqual(t, len(s), 256)
		}
	})
}
