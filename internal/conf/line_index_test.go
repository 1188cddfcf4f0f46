package conf

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLineIndex(t *testing.T) {
	t.Parallel()
	idx := NewLineIndex([]byte(`# comment
[server]
listen = "x"

[connections.finops]
"base_url" = "y"

[[jobs]]
name = "a"

[[jobs]]
name = "b"
retry = [
  "3s",
]
headers = { "X-Api-Key" = "k", b = "c" }
`))
	for key, want := range map[string]int{
		"server":                      2,
		"server.listen":               3,
		"server.unknown":              2, // nearest table
		"connections.finops.base_url": 6,
		"jobs[0].name":                9,
		"jobs[1].name":                12,
		"jobs[1].retry[1]":            13,
		"jobs[1].headers.X-Api-Key":   16,
		"jobs[1].headers.b":           16,
		"nothing.here":                0,
	} {
		require.Equal(t, want, idx.Line(key), key)
	}
}

func TestDecoderReportsTypeProblems(t *testing.T) {
	t.Parallel()
	type section struct {
		N int               `koanf:"n"`
		B bool              `koanf:"b"`
		L []string          `koanf:"l"`
		M map[string]string `koanf:"m"`
		S string            `koanf:"s" secret:"true"`
	}
	var dst struct {
		Sec section `koanf:"sec"`
	}
	ps := Decoder{LookupEnv: func(string) (string, bool) { return "", false }}.Decode(map[string]any{
		"sec": map[string]any{"n": "many", "b": "yes please", "l": 3, "m": []any{}, "s": "env:NOPE", "extra": 1},
	}, &dst)
	got := map[string]bool{}
	for _, p := range ps {
		got[p.Key] = true
	}
	require.Equal(t, map[string]bool{"sec.n": true, "sec.b": true, "sec.l": true, "sec.m": true, "sec.s": true, "sec.extra": true}, got)
}
