package finopssim

import (
	"bytes"
	"encoding/csv"
	"io"
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
