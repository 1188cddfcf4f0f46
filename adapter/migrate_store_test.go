package adapter

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

// TestMigrateStoreMovesFilesToTheBucket: from a SQLite store with files on
// disk to PostgreSQL with files in S3, both given as config files: the
// rows and every converted file move, and a second run moves nothing.
func TestMigrateStoreMovesFilesToTheBucket(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	e.sim.EnqueueSample(testActivity)
	require.NoError(t, e.exportNow("customer-groups"))

	dsn := testservice.Postgres(t)
	srv, bucket := testservice.S3(t)
	dir := t.TempDir()
	from := filepath.Join(dir, "from.toml")
	require.NoError(t, os.WriteFile(from, []byte(fmt.Sprintf("[store]\ndsn = %q\n\n[files]\ndir = %q\nwork_dir = %q\n",
		e.cfg.Store.DSN, e.cfg.Files.Dir, e.cfg.Files.WorkDir)), 0o600))
	to := filepath.Join(dir, "to.toml")
	require.NoError(t, os.WriteFile(to, []byte(fmt.Sprintf(`[store]
driver = "postgres"
dsn = %q

[files]
driver = "s3"
work_dir = %q
s3 = { bucket = %q, endpoint = %q, path_style = true, access_key_id = %q, secret_access_key = %q }
`, dsn, filepath.Join(dir, "work"), bucket, srv.Endpoint, srv.AccessKey, srv.SecretKey)), 0o600))

	got := map[string]store.CopyReport{}
	require.NoError(t, MigrateStore(context.Background(), from, to, func(r store.CopyReport) { got[r.Table] = r }))
	require.Equal(t, 3, got["files"].Copied, "the three entity files of the sample package")
	require.Equal(t, 3, got["artifacts"].Copied)

	// Each file is in the bucket with the artifact's bytes.
	pg, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn})
	require.NoError(t, err)
	defer pg.Close()
	s3, err := files.NewS3(context.Background(), files.S3Config{Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, 0)
	require.NoError(t, err)
	keys, err := pg.LiveArtifactKeys(context.Background())
	require.NoError(t, err)
	require.Len(t, keys, 3)
	for _, k := range keys {
		o, err := s3.Open(context.Background(), k)
		require.NoError(t, err)
		b, err := io.ReadAll(o)
		o.Close()
		require.NoError(t, err)
		local, err := os.ReadFile(filepath.Join(e.cfg.Files.Dir, filepath.FromSlash(k)))
		require.NoError(t, err)
		require.Equal(t, local, b)
	}

	got = map[string]store.CopyReport{}
	require.NoError(t, MigrateStore(context.Background(), from, to, func(r store.CopyReport) { got[r.Table] = r }))
	require.Zero(t, got["files"].Copied, "again: nothing new")
	require.Equal(t, 3, got["files"].Rows)
}
