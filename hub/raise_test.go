package hub

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/access"
)

// FuzzDecodeRaise: any body is refused with a status and a message, or
// decoded within the limits into valid topics.
func FuzzDecodeRaise(f *testing.F) {
	for _, s := range []string{`{"events":[{"topic":"a/b","data":1}]}`, `{"events":[]}`, `{`, `[1]`, `{"events":[{"topic":"a","additionalMetadata":[]}]}`,
		`{"events":[{"topic":"a","type":"x","data":{"n":[1,2]},"additionalMetadata":{"k":"v"}}]}`, `{"events":[{"topic":"a//b"}]}`} {
		f.Add([]byte(s))
	}
	l := Limits{MaxRequestBytes: 4096, MaxEventBytes: 512, MaxEvents: 4}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRaise(body, l)
		if err != nil {
			var re *Error
			require.True(t, errors.As(err, &re), "refusals are *Error: %v", err)
			require.NotEmpty(t, re.Msg)
			require.Contains(t, []int{400, 413}, re.Status)
			return
		}
		require.NotEmpty(t, req.Events)
		require.LessOrEqual(t, len(req.Events), l.MaxEvents)
		for _, e := range req.Events {
			require.NoError(t, access.ValidTopic(e.Topic))
		}
	})
}
