package publish

import (
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

func TestSignMatchesTheReferenceLibraryAndVerify(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := DecodeSecret(secret)
	require.NoError(t, err)
	other, err := DecodeSecret("whsec_" + "b3RoZXIta2V5LW90aGVyLWtleQ==")
	require.NoError(t, err)
	now := time.Now()
	body := []byte(`{"EventId":"e1"}`)
	h := http.Header{}
	h.Set("webhook-id", "e1")
	h.Set("webhook-timestamp", itoa(int(now.Unix())))
	h.Set("webhook-signature", Sign([][]byte{other, key}, "e1", now.Unix(), body)) // rotating: two signatures

	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(body, h), "the official library accepts our signature")
	require.NoError(t, Verify([][]byte{key}, h, body, now, 5*time.Minute))
	require.ErrorIs(t, Verify([][]byte{key}, h, []byte(`{"EventId":"e2"}`), now, 5*time.Minute), ErrBadSignature)
	require.ErrorIs(t, Verify([][]byte{key}, h, body, now.Add(10*time.Minute), 5*time.Minute), ErrTimestamp)
	h.Del("webhook-signature")
	require.ErrorIs(t, Verify([][]byte{key}, h, body, now, 0), ErrNoSignature)
}

func TestMatchTopic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, topic string
		want           bool
	}{
		{"dataexport", "dataexport/customer-groups/Customer groups", true},
		{"dataexport/customer-groups", "dataexport/customer-groups/Customer groups", true},
		{"dataexport/*/failed", "dataexport/vendors/failed", true},
		{"dataexport/*/failed", "dataexport/vendors/Vendors", false},
		{"dataexport/vendors", "dataexport/vendors-eu/Vendors", false},
		{"dataexport/vendors/Vendors/extra", "dataexport/vendors/Vendors", false},
		{"*", "dataexport/x/y", true},
		{"other", "dataexport/x/y", false},
	} {
		require.Equal(t, tc.want, MatchTopic(tc.pattern, tc.topic), "%s ~ %s", tc.pattern, tc.topic)
	}
}
