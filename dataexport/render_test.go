package dataexport

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/store"
)

// FuzzRender: the splice gives the JSON decoding and encoding gives,
// whatever the strings taken from the source and the URL hold (the bytes
// too, but for invalid UTF-8: the stored "\ufffd" stays escaped).
func FuzzRender(f *testing.F) {
	f.Add("Vendor groups", "usmf", "https://eb/files/a1/x.json?sig=abc&exp=1", "boom", int64(42), false)
	f.Add(`"ControlNumber":0,`, `\"ControlNumber\":0,`, `"DownloadURL":"","DownloadURLExpiresAt":""}`, "<&>\u2028", int64(-1), true)
	f.Add("", "", "", "", int64(0), true)
	f.Fuzz(func(t *testing.T, entity, legal, url, message string, cn int64, failed bool) {
		at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
		src := Source{Job: "j", Kind: "dequeue", MessageID: legal, LegalEntity: legal}
		ev := NewCompleted(src, File{ArtifactID: "a1", Entity: entity, SourceFormat: "CSV"}, at)
		switch {
		case failed:
			ev = NewFailed(src, datapackage.ReasonExportFailed, message, entity, message, at)
			url = ""
		case cn%2 == 0: // the change events too
			ev = NewChanged(src, File{ArtifactID: "a1", Entity: entity, Records: 3}, Changes{Inserted: 1, Updated: 2, Snapshot: message, Previous: legal}, at)
		}
		ev.ControlNumber = cn
		want, err := reencode(ev, url, at.Add(time.Hour))
		require.NoError(t, err)
		got, ok := splice(ev, url, at.Add(time.Hour))
		require.True(t, ok, "a body NewCompleted, NewChanged or NewFailed wrote is always spliced")
		require.JSONEq(t, string(want), string(got))
		if utf8.ValidString(entity) && utf8.ValidString(legal) && utf8.ValidString(url) && utf8.ValidString(message) {
			require.Equal(t, string(want), string(got))
		}
	})
}

func TestRenderFallsBackForBodiesItDoesNotKnow(t *testing.T) {
	t.Parallel()
	// An older binary's body, fields in another order.
	ev := store.Event{ID: "e1", Type: TypeCompleted, ControlNumber: 7,
		Body: []byte(`{"DownloadURL":"","ControlNumber":0,"EntityName":"X","DownloadURLExpiresAt":""}`)}
	body, err := Render(ev, "https://eb/f", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.Contains(t, string(body), `"ControlNumber":7,`)
	require.Contains(t, string(body), `"DownloadURL":"https://eb/f","DownloadURLExpiresAt":"2026-01-01T00:00:00Z"`)
	require.Contains(t, string(body), `"EntityName":"X"`)

	_, err = Render(store.Event{ID: "e2", Type: TypeFailed, Body: []byte(`{`)}, "", time.Time{})
	require.ErrorContains(t, err, "event e2: stored body")
}

// BenchmarkRender: the splice against decoding and encoding the body (the
// baseline, in the same run).
func BenchmarkRender(b *testing.B) {
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	ev := NewCompleted(Source{Job: "customers", Kind: "dequeue", MessageID: "m1", LegalEntity: "usmf"},
		File{ArtifactID: "a1", Entity: "Customer groups", SourceFormat: "CSV", Records: 1234, ContentType: "application/json", Bytes: 56789, SHA256: "ab12"}, at)
	ev.ControlNumber = 123456
	url := "http://127.0.0.1:8080/files/a1/Customer_groups.json?expires=1795000000&sig=0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		name   string
		render func(store.Event, string, time.Time) ([]byte, error)
	}{{"splice", Render}, {"reencode", reencode}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.render(ev, url, at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
