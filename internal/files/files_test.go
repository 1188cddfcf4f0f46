package files_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/store/storetest"
)

type fixture struct {
	st      *store.SQLite
	signer  *files.Signer
	server  *httptest.Server
	storage files.Local
	dir     string // the fixture's root: files/ is the storage, work/ the work dir
	clock   *finopssim.Clock
	data    []byte
	art     store.Artifact
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "eb.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	clock := finopssim.NewClock(time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC))
	data := []byte(`[` + "\n" + strings.Repeat(`{"CUSTOMERGROUPID":"10","DESCRIPTION":"Wholesale"},`+"\n", 200) + `{"CUSTOMERGROUPID":"99","DESCRIPTION":"Last"}` + "\n]\n")
	sum := sha256.Sum256(data)
	p := storetest.Package("customer-groups", "m1", []string{"Customer groups"}, "s1")
	a := &p.Artifacts[0]
	a.Name, a.Key, a.Bytes, a.SHA256, a.CreatedAt = "Customer_groups.json", "pkg-1/Customer_groups.json", int64(len(data)), hex.EncodeToString(sum[:]), clock.Now()
	storage := files.Local{Dir: filepath.Join(dir, "files")}
	src := filepath.Join(dir, "converted.json")
	require.NoError(t, os.WriteFile(src, data, 0o644))
	require.NoError(t, storage.Put(ctx, a.Key, src, files.Meta{ContentType: "application/json"}))
	_, err = st.CommitPackage(ctx, p)
	require.NoError(t, err)

	key, err := files.SigningKey(ctx, "", st)
	require.NoError(t, err)
	f := &fixture{st: st, storage: storage, dir: dir, clock: clock, data: data, art: *a}
	mux := http.NewServeMux()
	f.server = httptest.NewServer(mux)
	t.Cleanup(f.server.Close)
	f.signer = files.NewSigner(key, f.server.URL, time.Hour)
	mux.Handle(files.Pattern, files.NewHandler(f.signer, st, storage, 8, zerolog.Nop()).WithClock(clock.Now))
	return f
}

func get(t *testing.T, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestValidLinkServesTheFile(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.signer.URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour))
	resp, body := get(t, u, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, f.data, body)
	sum := sha256.Sum256(body)
	require.Equal(t, f.art.SHA256, hex.EncodeToString(sum[:]))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, `"`+f.art.SHA256+`"`, resp.Header.Get("ETag"))
	require.Contains(t, resp.Header.Get("Content-Disposition"), "Customer_groups.json")

	resp, _ = get(t, u, map[string]string{"If-None-Match": `"` + f.art.SHA256 + `"`})
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
}

func TestRangeRequest(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.signer.URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour))
	resp, body := get(t, u, map[string]string{"Range": "bytes=10-29"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, f.data[10:30], body)
	require.Equal(t, "bytes 10-29/"+itoa(len(f.data)), resp.Header.Get("Content-Range"))
}

// TestManyRangesGetTheWholeFile: a thousand one-byte ranges would make a
// multipart answer far larger than the file; past max_ranges the Range is
// ignored and the file is sent once.
func TestManyRangesGetTheWholeFile(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.signer.URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour))
	parts := make([]string, 1000)
	for i := range parts {
		parts[i] = fmt.Sprintf("%d-%d", i, i)
	}
	resp, body := get(t, u, map[string]string{"Range": "bytes=" + strings.Join(parts, ",")})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, f.data, body, "the whole file, once")

	resp, body = get(t, u, map[string]string{"Range": "bytes=0-0,10-10,20-20"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode, "a few ranges are still served")
	require.Contains(t, resp.Header.Get("Content-Type"), "multipart/byteranges")
	require.Less(t, len(body), 1024)
}

func TestTamperedLinksAreForbidden(t *testing.T) {
	t.Parallel()
	f := setup(t)
	good := f.signer.URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour))
	u, err := url.Parse(good)
	require.NoError(t, err)
	q := u.Query()
	tamper := func(mut func(u *url.URL, q url.Values)) string {
		cu := *u
		cq := url.Values{}
		for k, v := range q {
			cq[k] = append([]string(nil), v...)
		}
		mut(&cu, cq)
		cu.RawQuery = cq.Encode()
		return cu.String()
	}
	for name, link := range map[string]string{
		"stretched expiry": tamper(func(_ *url.URL, q url.Values) { q.Set("expires", itoa(int(f.clock.Now().Add(48*time.Hour).Unix()))) }),
		"other file":       tamper(func(u *url.URL, _ url.Values) { u.Path = "/files/" + f.art.ID + "/Other.json" }),
		"changed digit": tamper(func(_ *url.URL, q url.Values) {
			s := q.Get("signature")
			d := byte('0')
			if s[0] == '0' {
				d = '1' // always a different digit
			}
			q.Set("signature", string(d)+s[1:])
		}),
		"no signature": tamper(func(_ *url.URL, q url.Values) { q.Del("signature") }),
		"garbage":      tamper(func(_ *url.URL, q url.Values) { q.Set("signature", "zz") }),
		"other key":    files.NewSigner([]byte("another-key-1234567"), f.server.URL, time.Hour).URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour)),
	} {
		resp, _ := get(t, link, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
	}
}

func TestExpiredLinkIsGone(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.signer.URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour))
	f.clock.Advance(time.Hour)
	resp, _ := get(t, u, nil)
	require.Equal(t, http.StatusGone, resp.StatusCode)
}

func TestRetentionSweepAndNotFound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	sw := files.NewSweeper(f.st, f.storage, files.Config{Retention: 24 * time.Hour}, zerolog.Nop()).WithClock(f.clock.Now)
	n, err := sw.Sweep(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "nothing is past retention yet")

	f.clock.Advance(25 * time.Hour)
	n, err = sw.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = f.storage.Open(context.Background(), f.art.Key)
	require.ErrorIs(t, err, files.ErrNotFound)
	u := f.signer.URL(f.art.ID, f.art.Name, f.clock.Now().Add(time.Hour))
	resp, _ := get(t, u, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	n, err = sw.Sweep(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "already swept")
}

func TestSigningKeyIsGeneratedOnceAndKept(t *testing.T) {
	t.Parallel()
	f := setup(t)
	k1, err := files.SigningKey(context.Background(), "", f.st)
	require.NoError(t, err)
	k2, err := files.SigningKey(context.Background(), "", f.st)
	require.NoError(t, err)
	require.Equal(t, k1, k2)
	require.Len(t, k1, 32)
	k3, err := files.SigningKey(context.Background(), "configured-key-0123456789", f.st)
	require.NoError(t, err)
	require.Equal(t, []byte("configured-key-0123456789"), k3)
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestOrphanSweepDeletesWhatACrashLeft: stored files no record references
// are deleted once older than the grace period, with their count and bytes,
// and so are downloads, temp files and conversion folders left in work_dir;
// referenced files, recent files and files not of the product's layout stay.
func TestOrphanSweepDeletesWhatACrashLeft(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := f.storage.Dir
	work := filepath.Join(f.dir, "work")
	old := f.clock.Now().Add(-2 * time.Hour)
	write := func(p string, size int, mtime time.Time) string {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, make([]byte, size), 0o644))
		require.NoError(t, os.Chtimes(p, mtime, mtime))
		return p
	}
	live := filepath.Join(dir, filepath.FromSlash(f.art.Key))
	require.NoError(t, os.Chtimes(live, old, old))
	orphans := []string{
		write(filepath.Join(dir, "pkg-crashed", "Customers.json"), 1000, old),
		write(filepath.Join(dir, "pkg-crashed", "Vendors.json"), 500, old),
		write(filepath.Join(work, "pkg-x", "Entity.json"), 100, old), // a conversion cut short
		write(filepath.Join(work, "download-1.part"), 40, old),
		write(filepath.Join(work, "download-2.bin"), 60, old),
		write(filepath.Join(work, ".xlsx-9.tmp"), 7, old),
	}
	kept := []string{
		live, // referenced
		write(filepath.Join(dir, "pkg-new", "Fresh.json"), 10, f.clock.Now().Add(-time.Minute)), // within the grace period
		write(filepath.Join(work, "download-3.part"), 10, f.clock.Now()),                        // being downloaded
		write(filepath.Join(work, "operator-notes.txt"), 10, old),                               // not ours
	}
	sw := files.NewSweeper(f.st, f.storage, files.Config{Dir: dir, WorkDir: work, OrphanGrace: time.Hour}, zerolog.Nop()).WithClock(f.clock.Now)
	got, err := sw.SweepOrphans(context.Background())
	require.NoError(t, err)
	require.Equal(t, files.Orphans{Files: 6, Bytes: 1707}, got)
	for _, p := range orphans {
		_, err := os.Stat(p)
		require.ErrorIs(t, err, os.ErrNotExist, p)
	}
	for _, d := range []string{filepath.Join(dir, "pkg-crashed"), filepath.Join(work, "pkg-x")} {
		_, err = os.Stat(d)
		require.ErrorIs(t, err, os.ErrNotExist, "the emptied folder %s goes too", d)
	}
	for _, p := range kept {
		_, err := os.Stat(p)
		require.NoError(t, err, p)
	}
	got, err = sw.SweepOrphans(context.Background())
	require.NoError(t, err)
	require.Zero(t, got.Files, "nothing left to sweep")
}
