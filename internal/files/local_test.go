package files_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/files/filestest"
	"github.com/exportbridge/exportbridge/internal/store"
)

func TestLocalStorageConformance(t *testing.T) {
	t.Parallel()
	filestest.Run(t, func(t *testing.T) files.Storage { return files.Local{Dir: t.TempDir()} })
}

// artifactsFunc is a hand-written files.Artifacts.
type artifactsFunc func(ctx context.Context, id string) (*store.Artifact, error)

func (f artifactsFunc) Artifact(ctx context.Context, id string) (*store.Artifact, error) {
	return f(ctx, id)
}

// TestLocalLinks: local files behind exportbridge's signed links and
// download handler pass the links suite the object stores pass.
func TestLocalLinks(t *testing.T) {
	t.Parallel()
	filestest.RunLinks(t, func(t *testing.T) filestest.Driver {
		storage := files.Local{Dir: t.TempDir()}
		var mu sync.Mutex
		arts := map[string]store.Artifact{}
		lookup := artifactsFunc(func(_ context.Context, id string) (*store.Artifact, error) {
			mu.Lock()
			defer mu.Unlock()
			a, ok := arts[id]
			if !ok {
				return nil, store.ErrNotFound
			}
			return &a, nil
		})
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		signer := files.NewSigner([]byte("links-suite-signing-key-0123"), srv.URL, time.Hour)
		mux.Handle(files.Pattern, files.NewHandler(signer, lookup, storage, 8, zerolog.Nop()))
		return filestest.Driver{Storage: storage, Links: signer, Register: func(a store.Artifact) {
			mu.Lock()
			arts[a.ID] = a
			mu.Unlock()
		}}
	})
}
