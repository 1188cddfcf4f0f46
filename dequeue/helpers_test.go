package dequeue_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func startHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func readAll(r *http.Request) ([]byte, error) { return io.ReadAll(r.Body) }
