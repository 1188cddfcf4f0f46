// Package filestest is the conformance suite every files.Storage driver
// must pass.
package filestest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/files"
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
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
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
