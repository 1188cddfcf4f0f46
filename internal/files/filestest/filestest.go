// Package filestest is the conformance suite every files.Storage driver
// must pass.
package filestest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Opener returns a new, empty storage for one test.
type Opener func(t *testing.T) files.Storage

var ctx = context.Background()

// local writes data to a new local file, as a converter leaves it.
func local(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "converted.json")
	require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
	return p
}

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	for name, fn := range map[string]func(*testing.T, files.Storage){
		"PutOpenRead":           testPutOpen,
		"OpenSeeksForRanges":    testSeek,
		"MissingIsNotFound":     testMissing,
		"DeleteIsIdempotent":    testDelete,
		"ListEveryObject":       testList,
		"PutReplacesAtomically": testReplace,
		"KeysCannotEscape":      testBadKeys,
		"PingLeavesNoObject":    testPing,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

// testPing: a usable storage answers Ping, and whatever Ping writes to
// find out is never listed as an object (retention would count it).
func testPing(t *testing.T, s files.Storage) {
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Ping(ctx), "Ping can be repeated")
	n := 0
	require.NoError(t, s.List(ctx, func(files.ObjectInfo) error { n++; return nil }))
	require.Zero(t, n)
}

func testPutOpen(t *testing.T, s files.Storage) {
	src := local(t, `[{"A":"1"}]`)
	require.NoError(t, s.Put(ctx, "pkg1/Customers.json", src, files.Meta{ContentType: "application/json"}))
	_, err := os.Stat(src)
	require.ErrorIs(t, err, os.ErrNotExist, "Put takes the local file over")
	o, err := s.Open(ctx, "pkg1/Customers.json")
	require.NoError(t, err)
	defer o.Close()
	b, err := io.ReadAll(o)
	require.NoError(t, err)
	require.Equal(t, `[{"A":"1"}]`, string(b))
	require.Equal(t, "pkg1/Customers.json", o.Info().Key)
	require.EqualValues(t, len(b), o.Info().Size)
	require.False(t, o.Info().ModTime.IsZero())
}

func testSeek(t *testing.T, s files.Storage) {
	require.NoError(t, s.Put(ctx, "p/f.json", local(t, "0123456789"), files.Meta{ContentType: "application/json"}))
	o, err := s.Open(ctx, "p/f.json")
	require.NoError(t, err)
	defer o.Close()
	_, err = o.Seek(3, io.SeekStart)
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(o, buf)
	require.NoError(t, err)
	require.Equal(t, "3456", string(buf))
	end, err := o.Seek(0, io.SeekEnd)
	require.NoError(t, err)
	require.EqualValues(t, 10, end)
}

func testMissing(t *testing.T, s files.Storage) {
	_, err := s.Open(ctx, "nope/x.json")
	require.ErrorIs(t, err, files.ErrNotFound)
}

func testDelete(t *testing.T, s files.Storage) {
	require.NoError(t, s.Put(ctx, "p/a.json", local(t, "a"), files.Meta{ContentType: "application/json"}))
	require.NoError(t, s.Delete(ctx, "p/a.json"))
	_, err := s.Open(ctx, "p/a.json")
	require.ErrorIs(t, err, files.ErrNotFound)
	require.NoError(t, s.Delete(ctx, "p/a.json"), "deleting a missing object is no error")
}

func testList(t *testing.T, s files.Storage) {
	for _, k := range []string{"p1/a.json", "p1/b.json", "p2/c.json"} {
		require.NoError(t, s.Put(ctx, k, local(t, k), files.Meta{ContentType: "application/json"}))
	}
	var keys []string
	require.NoError(t, s.List(ctx, func(o files.ObjectInfo) error {
		keys = append(keys, o.Key)
		require.EqualValues(t, len(o.Key), o.Size)
		return nil
	}))
	sort.Strings(keys)
	require.Equal(t, []string{"p1/a.json", "p1/b.json", "p2/c.json"}, keys)
	stop := errors.New("stop")
	n := 0
	err := s.List(ctx, func(files.ObjectInfo) error { n++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n, "List stops at fn's error")
}

func testReplace(t *testing.T, s files.Storage) {
	require.NoError(t, s.Put(ctx, "p/a.json", local(t, "first"), files.Meta{ContentType: "application/json"}))
	require.NoError(t, s.Put(ctx, "p/a.json", local(t, "second"), files.Meta{ContentType: "application/json"}))
	o, err := s.Open(ctx, "p/a.json")
	require.NoError(t, err)
	defer o.Close()
	b, err := io.ReadAll(o)
	require.NoError(t, err)
	require.Equal(t, "second", string(b))
}

func testBadKeys(t *testing.T, s files.Storage) {
	for _, k := range []string{"", "a", "../x/y", "a/../b", "a/b/c", "/a/b", `a\b`, "a/", "/a", "./a", "a/.."} {
		require.Error(t, s.Put(ctx, k, local(t, "x"), files.Meta{ContentType: "application/json"}), "key %q", k)
		_, err := s.Open(ctx, k)
		require.Error(t, err, "key %q", k)
	}
}

// Linker mints a download link to an artifact's file (files.Signer,
// files.S3, files.Azblob).
type Linker interface {
	Link(ctx context.Context, a store.Artifact, expires time.Time) (string, error)
}

// Driver is a storage with its links, for RunLinks. Register, when set,
// records an artifact where the link's server looks it up (local files
// are served by exportbridge's handler from the artifact's record).
type Driver struct {
	Storage  files.Storage
	Links    Linker
	Register func(a store.Artifact)
}

// RunLinks runs the suite of minted links, fetched with plain net/http as a
// receiver would: the file with its type, a tampered link refused, an
// expired link refused, a byte range, a deleted file gone.
func RunLinks(t *testing.T, open func(t *testing.T) Driver) {
	data := `[{"CustomerGroupId":"10","Description":"Wholesale"}]`
	put := func(t *testing.T, d Driver, key string) store.Artifact {
		t.Helper()
		a := store.Artifact{ID: "art-" + strings.ReplaceAll(key, "/", "-"), Job: "j", Entity: "E", Name: path.Base(key), Key: key,
			ContentType: "application/json", Bytes: int64(len(data)), CreatedAt: time.Now()}
		require.NoError(t, d.Storage.Put(ctx, key, local(t, data), files.Meta{ContentType: a.ContentType}))
		if d.Register != nil {
			d.Register(a)
		}
		return a
	}
	get := func(t *testing.T, u string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	for name, fn := range map[string]func(*testing.T, Driver){
		"LinkServesTheFile": func(t *testing.T, d Driver) {
			a := put(t, d, "pkg/Customer_groups.json")
			u, err := d.Links.Link(ctx, a, time.Now().Add(time.Hour))
			require.NoError(t, err)
			resp, body := get(t, u)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			require.Equal(t, data, body)
			require.Equal(t, "application/json", strings.Split(resp.Header.Get("Content-Type"), ";")[0])
		},
		"TamperedLinkIsRefused": func(t *testing.T, d Driver) {
			a := put(t, d, "pkg/Customer_groups.json")
			u, err := d.Links.Link(ctx, a, time.Now().Add(time.Hour))
			require.NoError(t, err)
			parsed, err := url.Parse(u)
			require.NoError(t, err)
			q := parsed.Query()
			for _, k := range []string{"signature", "X-Amz-Signature", "sig"} {
				if v := q.Get(k); v != "" {
					q.Set(k, strings.Repeat("0", len(v)-2)+"AA") // another signature, same form
				}
			}
			parsed.RawQuery = q.Encode()
			resp, body := get(t, parsed.String())
			require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
		},
		"ExpiredLinkIsRefused": func(t *testing.T, d Driver) {
			a := put(t, d, "pkg/Customer_groups.json")
			u, err := d.Links.Link(ctx, a, time.Now().Add(-time.Minute))
			require.NoError(t, err)
			// Some stores cannot mint a link already expired: they mint the
			// shortest one, refused within seconds.
			require.Eventually(t, func() bool {
				resp, _ := get(t, u)
				return resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusGone
			}, 10*time.Second, 100*time.Millisecond, "an expired link is refused")
		},
		"RangeIsServed": func(t *testing.T, d Driver) {
			a := put(t, d, "pkg/Customer_groups.json")
			u, err := d.Links.Link(ctx, a, time.Now().Add(time.Hour))
			require.NoError(t, err)
			resp, body := get(t, u, "Range", "bytes=2-18")
			require.Equal(t, http.StatusPartialContent, resp.StatusCode, body)
			require.Equal(t, data[2:19], body)
		},
		"DeletedFileIsGone": func(t *testing.T, d Driver) {
			a := put(t, d, "pkg/Customer_groups.json")
			u, err := d.Links.Link(ctx, a, time.Now().Add(time.Hour))
			require.NoError(t, err)
			require.NoError(t, d.Storage.Delete(ctx, a.Key))
			resp, body := get(t, u)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}
