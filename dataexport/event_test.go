package dataexport_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/store"
)

func TestEventsAndTheirRendering(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	src := dataexport.Source{Job: "vendors", Kind: "package-export", MessageID: "x1", ExecutionID: "x1", LegalEntity: "usmf"}
	ev := dataexport.NewCompleted(src, dataexport.File{ArtifactID: "a1", Entity: "Vendor groups", SourceFormat: "CSV", Records: 7}, at)
	require.Equal(t, dataexport.CETypeCompleted, ev.CEType)
	require.Equal(t, "/exportbridge/jobs/vendors", ev.Source)
	require.Equal(t, "Vendor groups", ev.Subject)
	require.Equal(t, "dataexport/vendors/Vendor groups", ev.Topic)
	ev.ControlNumber = 42
	body, err := dataexport.Render(ev, "https://eb/files/a1/x.json?sig", at.Add(time.Hour))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, float64(42), got["ControlNumber"])
	require.Equal(t, "https://eb/files/a1/x.json?sig", got["DownloadURL"])
	require.Equal(t, "2026-11-23T12:00:00Z", got["DownloadURLExpiresAt"])

	failed := dataexport.NewFailed(src, datapackage.ReasonExportFailed, "boom", "", "", at)
	require.Equal(t, dataexport.CETypeFailed, failed.CEType)
	require.Equal(t, "vendors", failed.Subject, "a package-level failure's subject is the job")
	require.Equal(t, "dataexport/vendors/failed", failed.Topic)
	body, err = dataexport.Render(failed, "", time.Time{})
	require.NoError(t, err)
	require.Contains(t, string(body), `"FailureReason":"export_failed"`)

	other := store.Event{ID: "r1", Type: "OrderShipped", Body: []byte(`{"order":1}`)}
	body, err = dataexport.Render(other, "", time.Time{})
	require.NoError(t, err)
	require.Equal(t, `{"order":1}`, string(body), "events of other contracts pass through as stored")
}
