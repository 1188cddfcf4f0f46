package datapackage

import (
	stdzip "archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// dirState lists every path under dir, to prove nothing was written.
func dirState(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return err
	}))
	return out
}

func TestHostilePackagesAreRejected(t *testing.T) {
	t.Parallel()
	zeros := bytes.Repeat([]byte{0}, 64<<20) // 64 MiB of zeros deflates ~1000:1
	cases := []struct {
		name   string
		files  map[string][]byte
		opts   Options
		reason Reason
		msg    string
	}{
		{"zip slip dotdot", map[string][]byte{"../evil.csv": []byte("A\n1\n")}, Options{}, ReasonUnsafe, "escapes the package"},
		{"zip slip nested", map[string][]byte{"a/../../evil.csv": []byte("A\n1\n")}, Options{}, ReasonUnsafe, "escapes the package"},
		{"absolute path", map[string][]byte{"/etc/evil.csv": []byte("A\n1\n")}, Options{}, ReasonUnsafe, "absolute path"},
		{"backslash", map[string][]byte{`..\evil.csv`: []byte("A\n1\n")}, Options{}, ReasonUnsafe, "backslash"},
		{"drive letter", map[string][]byte{"C:evil.csv": []byte("A\n1\n")}, Options{}, ReasonUnsafe, "drive letter"},
		{"zip bomb ratio", map[string][]byte{"Bomb.csv": zeros}, Options{}, ReasonLimit, "expands"},
		{"entry too large", map[string][]byte{"Big.csv": bytes.Repeat([]byte("A,B\n"), 1000)}, Options{MaxEntryBytes: 1000}, ReasonLimit, "max_entry_bytes"},
		{"total too large", map[string][]byte{"A.csv": bytes.Repeat([]byte("a\n"), 400), "B.csv": bytes.Repeat([]byte("b\n"), 400)}, Options{MaxTotalBytes: 1000}, ReasonLimit, "max_total_bytes"},
		{"too many entries", map[string][]byte{"A.csv": []byte("a\n"), "B.csv": []byte("b\n"), "C.csv": []byte("c\n")}, Options{MaxEntries: 2}, ReasonLimit, "max_entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			pkg := filepath.Join(root, "pkg.zip")
			writeZip(t, pkg, tc.files)
			before := dirState(t, root)
			_, err := Convert(context.Background(), pkg, filepath.Join(root, "out"), tc.opts)
			require.Error(t, err)
			var de *Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.reason, de.Reason, "%v", err)
			require.Contains(t, err.Error(), tc.msg)
			require.Contains(t, err.Error(), "pkg.zip")
			after := dirState(t, root)
			require.ElementsMatch(t, append(before, filepath.Join(root, "out")), after, "nothing written but the empty output folder")
		})
	}
}

// TestLyingSizesAreCaughtWhileReading: an entry whose central directory
// claims a small size but inflates to far more is stopped by the read-side
// limit, not trusted.
func TestLyingSizesAreCaughtWhileReading(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var body bytes.Buffer
	fw := zip.NewWriter(&body)
	w, err := fw.CreateHeader(&zip.FileHeader{Name: "Bomb.csv", Method: zip.Deflate})
	require.NoError(t, err)
	_, err = w.Write(append([]byte("A\n"), bytes.Repeat([]byte("0\n"), 8<<20)...))
	require.NoError(t, err)
	require.NoError(t, fw.Close())
	data := body.Bytes()
	// Rewrite the declared uncompressed sizes (local header and central
	// directory) to 16 bytes.
	patched := patchSizes(t, data, 16)
	pkg := filepath.Join(root, "liar.zip")
	require.NoError(t, os.WriteFile(pkg, patched, 0o600))
	_, err = Convert(context.Background(), pkg, filepath.Join(root, "out"), Options{MaxRatio: 10})
	require.Error(t, err)
	require.Contains(t, []Reason{ReasonLimit, ReasonCorrupt}, reasonOf(t, err), "%v", err)
	entries, _ := os.ReadDir(filepath.Join(root, "out"))
	require.Empty(t, entries)
}

// patchSizes overwrites the uncompressed-size fields of every local and
// central header in a one-entry zip.
func patchSizes(t testing.TB, data []byte, size uint32) []byte {
	t.Helper()
	out := append([]byte(nil), data...)
	put := func(off int) {
		out[off], out[off+1], out[off+2], out[off+3] = byte(size), byte(size>>8), byte(size>>16), byte(size>>24)
	}
	for i := 0; i+4 <= len(out); i++ {
		switch {
		case bytes.Equal(out[i:i+4], []byte("PK\x01\x02")):
			put(i + 24)
		case bytes.Equal(out[i:i+4], []byte("PK\x07\x08")):
			put(i + 12)
		}
	}
	return out
}

func TestTruncatedAndCorruptZips(t *testing.T) {
	t.Parallel()
	p := finopssim.SamplePackage("Vendors export", 300, 3)
	data := p.Zip()
	corrupt := append([]byte(nil), data...)
	for i := 200; i < 260; i++ { // inside the first entry's deflate stream
		corrupt[i] ^= 0x5A
	}
	for name, b := range map[string][]byte{
		"truncated.zip":  data[:len(data)/2],
		"corrupt.zip":    corrupt,
		"random.zip":     append([]byte("PK\x03\x04"), bytes.Repeat([]byte{0x13, 0x37}, 500)...),
		"binary.bin":     {0x00, 0x01, 0x02, 0xFF},
		"empty-file.zip": {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			pkg := filepath.Join(root, name)
			require.NoError(t, os.WriteFile(pkg, b, 0o600))
			_, err := Convert(context.Background(), pkg, filepath.Join(root, "out"), Options{})
			require.Error(t, err)
			require.Equal(t, ReasonCorrupt, reasonOf(t, err), "%v", err)
			require.Contains(t, err.Error(), name)
			entries, _ := os.ReadDir(filepath.Join(root, "out"))
			require.Empty(t, entries, "a corrupt package keeps no partial output")
		})
	}
}

func TestBadManifestNamesItsLine(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	pkg := filepath.Join(root, "p.zip")
	writeZip(t, pkg, map[string][]byte{"Manifest.xml": finopssim.UTF16LE("<DataManagementPackageManifest xmlns=\"" + Namespace + "\">\n<PackageEntityList>\n</Oops>"), "A.csv": []byte("A\n1\n")})
	_, err := Convert(context.Background(), pkg, filepath.Join(root, "out"), Options{})
	require.Equal(t, ReasonCorrupt, reasonOf(t, err))
	require.Contains(t, err.Error(), "p.zip: Manifest.xml line 3:")
}

func FuzzConvertZip(f *testing.F) {
	f.Add(finopssim.SamplePackage("seed", 3, 1).Zip())
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte("A,B\r\n1,2\r\n"))
	// Seeds past the new limits: a duplicate entry, a deep manifest, a line,
	// a field and an unterminated quote past the (small) record limits.
	var dup bytes.Buffer
	zw := stdzip.NewWriter(&dup)
	for _, n := range []string{"A.csv", "A.csv"} {
		w, _ := zw.Create(n)
		_, _ = w.Write([]byte("A\r\n1\r\n"))
	}
	_ = zw.Close()
	f.Add(dup.Bytes())
	f.Add(finopssim.ZipMap(map[string][]byte{"Manifest.xml": []byte(strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)), "A.csv": []byte("A\r\n1\r\n")}))
	f.Add(finopssim.ZipMap(map[string][]byte{"A.csv": []byte("A,B\r\n" + strings.Repeat("x,", 4000) + "\r\n")}))
	f.Add(finopssim.ZipMap(map[string][]byte{"A.csv": []byte("A,B\r\n1,\"" + strings.Repeat("q\r\n", 3000))}))
	f.Add(finopssim.ZipMap(map[string][]byte{"A.xml": []byte("<Document><R><A>" + strings.Repeat("t", 9000) + "</A></R></Document>")}))
	// Durability is not under test here; executions per second are.
	noSync := false
	if fl := flag.Lookup("test.fuzz"); fl != nil && fl.Value.String() != "" {
		noSync = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		pkg := filepath.Join(root, "f.zip")
		require.NoError(t, os.WriteFile(pkg, data, 0o600))
		out := filepath.Join(root, "out")
		conv, err := Convert(context.Background(), pkg, out, Options{MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20,
			MaxRecordBytes: 4 << 10, MaxFieldBytes: 2 << 10, NoSync: noSync})
		if err != nil {
			// Only a package's content can fail it here (the disk is fine):
			// every error is an *Error with a known reason.
			var de *Error
			require.ErrorAs(t, err, &de)
			require.Contains(t, []Reason{ReasonCorrupt, ReasonUnsafe, ReasonLimit, ReasonUnsupported, ReasonConvert}, de.Reason)
			return
		}
		for _, r := range conv.Results {
			require.Equal(t, out, filepath.Dir(r.Path), "outputs stay in the output folder")
			b, err := os.ReadFile(r.Path)
			require.NoError(t, err)
			require.True(t, json.Valid(b))
		}
		for _, p := range dirState(t, root) {
			require.True(t, p == root || p == pkg || filepath.Dir(p) == out || p == out, "unexpected path %s", p)
		}
	})
}

// reasonOf is the reason of err, which must be an *Error.
func reasonOf(t testing.TB, err error) Reason {
	t.Helper()
	var de *Error
	require.ErrorAs(t, err, &de)
	return de.Reason
}
