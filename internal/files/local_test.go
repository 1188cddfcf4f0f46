package files_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/fault/faulttest"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/files/filestest"
	"github.com/exportbridge/exportbridge/internal/store"
)

func TestLocalStorageConformance(t *testing.T) {
	t.Parallel()
	filestest.Run(t, func(t *testing.T) files.Storage { return files.Local{Dir: t.TempDir()} })
}

// TestLocalPingFailsWhereNothingCanBeWritten: readiness turns red for a
// folder that cannot exist (its parent is a file) and for a full disk, not
// only when an export fails on it.
func TestLocalPingFailsWhereNothingCanBeWritten(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(parent, nil, 0o600))
	err := files.Local{Dir: filepath.Join(parent, "converted")}.Ping(context.Background())
	require.ErrorIs(t, err, syscall.ENOTDIR)
	require.ErrorContains(t, err, "converted", "the error names the folder")

	full := files.LocalWithCreateTemp(t.TempDir(), faulttest.DevFull(t, nil))
	require.ErrorIs(t, full.Ping(context.Background()), syscall.ENOSPC, "a full disk")
	require.NoError(t, files.Local{Dir: full.Dir}.Ping(context.Background()), "the same folder with room")
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
