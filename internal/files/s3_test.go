package files_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/files/filestest"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/store/storetest"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

func openS3(t *testing.T, prefix string) *files.S3 {
	t.Helper()
	srv, bucket := testservice.S3(t)
	s, err := files.NewS3(context.Background(), files.S3Config{Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, time.Hour)
	require.NoError(t, err)
	return s
}

func TestS3Conformance(t *testing.T) {
	t.Parallel()
	filestest.Run(t, func(t *testing.T) files.Storage { return openS3(t, "eb/") })
}

// TestS3LinksServeTheStoredFile: a minted link is a presigned GET that
// plain net/http fetches, with the bytes, type and encoding stored.
func TestS3LinksServeTheStoredFile(t *testing.T) {
	t.Parallel()
	s := openS3(t, "")
	require.NoError(t, s.Ping(context.Background()))
	data := []byte(`[{"CustomerGroupId":"10"}]`)
	p := filepath.Join(t.TempDir(), "f.json.gz")
	require.NoError(t, os.WriteFile(p, data, 0o600)) // bytes as stored; the encoding is only declared
	require.NoError(t, s.Put(context.Background(), "pkg/f.json.gz", p, files.Meta{ContentType: "application/json", ContentEncoding: "gzip"}))
	link, err := s.Link(context.Background(), store.Artifact{ID: "a", Name: "f.json.gz", Key: "pkg/f.json.gz"}, time.Now().Add(time.Hour))
	require.NoError(t, err)
	// Compression off: Go's client would otherwise gunzip a gzip-encoded body.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Get(link)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	sum, want := sha256.Sum256(body), sha256.Sum256(data)
	require.Equal(t, hex.EncodeToString(want[:]), hex.EncodeToString(sum[:]))

	// A tampered link is refused by the store.
	resp2, err := client.Get(link + "x")
	require.NoError(t, err)
	resp2.Body.Close()
	require.Equal(t, http.StatusForbidden, resp2.StatusCode)
}

// TestObjectStoreRetentionAndOrphanSweeps: the sweeper works on a bucket
// and a container as on a folder: past retention an artifact's object
// goes, and an object no record references goes once past the grace
// period.
func TestObjectStoreRetentionAndOrphanSweeps(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(*testing.T) files.Storage{
		"s3":     func(t *testing.T) files.Storage { return openS3(t, "eb/") },
		"azblob": func(t *testing.T) files.Storage { return openAzblob(t, "eb/") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testSweeps(t, open(t))
		})
	}
}

func testSweeps(t *testing.T, s files.Storage) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "eb.db"))
	require.NoError(t, err)
	defer st.Close()
	put := func(key string) {
		p := filepath.Join(t.TempDir(), "f.json")
		require.NoError(t, os.WriteFile(p, []byte(key), 0o600))
		require.NoError(t, s.Put(ctx, key, p, files.Meta{ContentType: "application/json"}))
	}
	pkg := storetestPackage(time.Now())
	put(pkg.Artifacts[0].Key)
	_, err = st.CommitPackage(ctx, pkg)
	require.NoError(t, err)
	put("pkg-crashed/Orphan.json")

	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	sw := files.NewSweeper(st, s, files.Config{Dir: t.TempDir(), WorkDir: t.TempDir(), Retention: 24 * time.Hour, OrphanGrace: time.Hour},
		zerolog.Nop()).WithClock(later)
	got, err := sw.SweepOrphans(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, got.Files)
	_, err = s.Open(ctx, "pkg-crashed/Orphan.json")
	require.ErrorIs(t, err, files.ErrNotFound)
	_, err = s.Open(ctx, pkg.Artifacts[0].Key)
	require.NoError(t, err, "a referenced object stays")

	sw.WithClock(func() time.Time { return time.Now().Add(25 * time.Hour) })
	n, err := sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = s.Open(ctx, pkg.Artifacts[0].Key)
	require.ErrorIs(t, err, files.ErrNotFound, "past retention")
}

func storetestPackage(at time.Time) store.Package {
	p := storetest.Package("customer-groups", "m1", []string{"Customer groups"}, "s1")
	p.Artifacts[0].CreatedAt = at
	return p
}

func TestS3Links(t *testing.T) {
	t.Parallel()
	filestest.RunLinks(t, func(t *testing.T) filestest.Driver {
		s := openS3(t, "eb/")
		return filestest.Driver{Storage: s, Links: s}
	})
}
