package files_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/files/filestest"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

func openAzblob(t *testing.T, prefix string) *files.Azblob {
	t.Helper()
	az, container := testservice.AzureBlob(t)
	s, err := files.NewAzblob(files.AzblobConfig{AccountURL: az.AccountURL, Container: container, Prefix: prefix,
		AccountName: az.AccountName, AccountKey: az.AccountKey}, time.Hour)
	require.NoError(t, err)
	return s
}

func TestAzblobConformance(t *testing.T) {
	t.Parallel()
	filestest.Run(t, func(t *testing.T) files.Storage { return openAzblob(t, "eb/") })
}

// TestAzblobLinksServeTheStoredFile: a minted link carries a read-only SAS
// that plain net/http fetches, with the bytes, type and encoding stored;
// the same SAS cannot write.
func TestAzblobLinksServeTheStoredFile(t *testing.T) {
	t.Parallel()
	s := openAzblob(t, "")
	require.NoError(t, s.Ping(context.Background()))
	data := []byte(`[{"VendorGroupId":"30"}]`)
	p := filepath.Join(t.TempDir(), "f.json.gz")
	require.NoError(t, os.WriteFile(p, data, 0o600))
	require.NoError(t, s.Put(context.Background(), "pkg/f.json.gz", p, files.Meta{ContentType: "application/json", ContentEncoding: "gzip"}))
	link, err := s.Link(context.Background(), store.Artifact{Key: "pkg/f.json.gz"}, time.Now().Add(time.Hour))
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}} // keep the gzip body as stored
	resp, err := client.Get(link)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, data, body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))

	req, err := http.NewRequest(http.MethodPut, link, nil)
	require.NoError(t, err)
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	put, err := client.Do(req)
	require.NoError(t, err)
	put.Body.Close()
	require.Equal(t, http.StatusForbidden, put.StatusCode, "the SAS is read-only")
}

func TestAzblobLinks(t *testing.T) {
	t.Parallel()
	filestest.RunLinks(t, func(t *testing.T) filestest.Driver {
		s := openAzblob(t, "eb/")
		return filestest.Driver{Storage: s, Links: s}
	})
}
