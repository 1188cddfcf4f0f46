package adapter

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// TestServerBoundsIdleSlowAndHugeRequests: an idle keep-alive connection is
// closed after idle_timeout, a client that never finishes its headers after
// read_header_timeout, and headers over max_header_bytes get 431.
func TestServerBoundsIdleSlowAndHugeRequests(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, func(c *Config) {
		c.Server.IdleTimeout = 300 * time.Millisecond
		c.Server.ReadHeaderTimeout = 300 * time.Millisecond
		c.Server.MaxHeaderBytes = 8 << 10
	})
	a, err := StartApp(context.Background(), e.cfg, zerolog.Nop(), AppOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	addr := e.cfg.Server.Listen

	closedWithin := func(t *testing.T, c net.Conn, within time.Duration) {
		t.Helper()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(within)))
		_, err := io.Copy(io.Discard, c)
		require.NoError(t, err, "the server closed the connection (EOF) before %s", within)
	}

	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, _ = io.Copy(io.Discard, resp.Body)
		closedWithin(t, c, 5*time.Second)
	})
	t.Run("slow headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		require.NoError(t, err)
		closedWithin(t, c, 5*time.Second)
	})
	t.Run("huge headers", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
		require.NoError(t, err)
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
}
