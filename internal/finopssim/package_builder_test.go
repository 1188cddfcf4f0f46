package finopssim

import (
	"bytes"
	"encoding/csv"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"
	"github.com/stretchr/testify/require"
)

func TestSamplePackageIsRealistic(t *testing.T) {
	t.Parallel()
	p := SamplePackage("Vendors export", 50, 1)
	data := p.Zip()
	require.Equal(t, data, p.Zip(), "same seed, same bytes")
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		files[f.Name] = b
	}
	for _, name := range []string{"Manifest.xml", "PackageHeader.xml"} {
		require.Equal(t, []byte{0xFF, 0xFE}, files[name][:2], "%s is UTF-16 LE with BOM", name)
	}
	csvFile := files["Customer groups.csv"]
	require.Equal(t, "\uFEFF", string(csvFile[:3]), "UTF-8 BOM")
	require.Contains(t, string(csvFile), "\r\n")
	records, err := csv.NewReader(bytes.NewReader(csvFile[3:])).ReadAll()
	require.NoError(t, err)
	require.Equal(t, p.Entities[0].Columns, records[0])
	// encoding/csv reads a quoted CRLF as LF.
	var want [][]string
	for _, r := range p.Entities[0].Rows {
		var row []string
		for _, f := range r {
			row = append(row, strings.ReplaceAll(f, "\r\n", "\n"))
		}
		want = append(want, row)
	}
	require.Equal(t, want, records[1:])
	joined := strings.Join(flatten(records), "|")
	for _, s := range []string{",", `"`, "\n", "ü", "✓"} {
		require.Contains(t, joined, s, "sample data exercises %q", s)
	}
	require.Contains(t, string(files["Currencies.xml"]), "<CURRENCY><CURRENCYCODE>")
}

func flatten(rows [][]string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// TestSuccessivePackagesAreSuccessiveSnapshots: the next package drops the
// oldest record, adds one, changes one description, and keeps the rest.
func TestSuccessivePackagesAreSuccessiveSnapshots(t *testing.T) {
	t.Parallel()
	byID := func(p Package) map[string][]string {
		out := map[string][]string{}
		for _, r := range p.Entities[0].Rows {
			out[r[0]] = r
		}
		return out
	}
	a, b := byID(SamplePackage("g", 6, 2)), byID(SamplePackage("g", 6, 3))
	require.Len(t, a, 6)
	require.Len(t, b, 6)
	require.Contains(t, a, "CG0002")
	require.NotContains(t, b, "CG0002", "the oldest is gone")
	require.Contains(t, b, "CG0008", "a new one came")
	var changed []string
	for id, row := range b {
		if old, ok := a[id]; ok && !slices.Equal(old, row) {
			changed = append(changed, id)
			require.Equal(t, old[0], row[0])
			require.NotEqual(t, old[1], row[1], "only the description changes")
			require.Equal(t, old[2:], row[2:])
		}
	}
	require.NotEmpty(t, changed, "some record changed")
}
