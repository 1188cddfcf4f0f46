package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/store"
)

// BenchmarkCommitPackage commits packages of 100 events, each with an
// artifact and deliveries to two subscriptions: the pipeline's write.
func BenchmarkCommitPackage(b *testing.B) {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "eb.db"))
	require.NoError(b, err)
	defer st.Close()
	body := make([]byte, 900)
	for i := range body {
		body[i] = 'x'
	}
	p := 0
	b.ReportAllocs()
	for b.Loop() {
		p++
		pkg := store.Package{Job: "bench", MessageID: fmt.Sprintf("m%d", p), At: time.Now()}
		for i := range 100 {
			aid := fmt.Sprintf("a%d-%d", p, i)
			pkg.Artifacts = append(pkg.Artifacts, store.Artifact{ID: aid, Job: "bench", Entity: "E", Name: "e.json", Key: aid + "/e.json", CreatedAt: time.Now()})
			pkg.Events = append(pkg.Events, store.NewEvent{Event: store.Event{ID: fmt.Sprintf("e%d-%d", p, i), Type: "T", Topic: "t", Job: "bench",
				Body: body, ArtifactID: aid, CreatedAt: time.Now()}, Subscriptions: []string{"a", "b"}})
		}
		_, err := st.CommitPackage(context.Background(), pkg)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*100), "µs/event")
}
