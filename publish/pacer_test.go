package publish

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPacerSpacesAttempts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := pacer{perSecond: 10}
		start := time.Now()
		for range 5 {
			require.True(t, p.wait(context.Background()))
		}
		require.Equal(t, 400*time.Millisecond, time.Since(start), "5 attempts at 10/s: the first at once, then every 100ms")

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.False(t, p.wait(ctx), "a stop ends the wait")

		free := pacer{}
		require.True(t, free.wait(context.Background()))
		require.Equal(t, 400*time.Millisecond, time.Since(start), "no cap: no wait")
	})
}

func TestFilterCompilesAndMatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expr, err string
	}{
		{"event.data.amount >", "1:20"},
		{"topic + 1", "no matching overload"},
		{`"a string"`, "must be a bool"},
	} {
		_, err := CompileFilter(c.expr)
		require.ErrorContains(t, err, c.err, c.expr)
	}
}
