package datapackage

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"
)

// rawZip writes entries in order with archive/zip, which (unlike a map)
// can write one name twice.
func rawZip(t testing.TB, path string, entries ...[2]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		require.NoError(t, err)
		_, err = w.Write([]byte(e[1]))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d=\"xxxxxxxx\" ", i)
	}
	return b.String()
}

// limited are small limits, so the tests stay small.
var limited = Options{MaxRecordBytes: 64 << 10, MaxFieldBytes: 32 << 10}

// TestRecordAndFieldLimits: past a limit the entity (only) fails as
// limit_exceeded, naming the file, the line where the record or the quote
// started, and the limit's key; the other entities are kept.
func TestRecordAndFieldLimits(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 100<<10)
	lines := strings.Repeat("1,2\r\n", 20000) // 100 KB of ordinary lines
	for _, tc := range []struct {
		name, file, format, data string
		line                     int64
		key                      string
	}{
		{"CSV line longer than the record limit", "A.csv", "CSV", "A,B\r\n1,2\r\n3," + strings.Repeat("ab,", 30000) + "\r\n5,6\r\n", 3, "convert.max_record_bytes"},
		{"CSV field longer than the field limit", "A.csv", "CSV", "A,B\r\n1,2\r\n3," + big + "\r\n5,6\r\n", 3, "convert.max_field_bytes"},
		{"CSV unquoted field", "A.csv", "CSV", "A,B\r\n" + strings.Repeat("y", 40<<10) + ",1\r\n", 2, "convert.max_field_bytes"},
		{"CSV quote never closed", "A.csv", "CSV", "A,B\r\n1,2\r\n3,\"opens here\r\n" + lines, 3, "convert.max_field_bytes"},
		{"CSV quoted field over many lines", "A.csv", "CSV", "A,B\r\n1,\"" + strings.Repeat("z\r\n", 20000) + "\"\r\n", 2, "convert.max_field_bytes"},
		{"CSV record over many fields", "A.csv", "CSV", "A,B\r\n" + strings.Repeat("\"1\r\n\",", 30000) + "\r\n", 2, "convert.max_record_bytes"},
		{"XML text field", "A.xml", "XML-Element", "<Document>\n<R><A>1</A></R>\n<R>\n<A>" + big + "</A></R></Document>", 4, "convert.max_field_bytes"},
		{"XML record", "A.xml", "XML-Element", "<Document>\n<R>" + strings.Repeat("<A>aaaaaaaaaa</A>", 10000) + "</R></Document>", 2, "convert.max_record_bytes"},
		{"XML attribute", "A.xml", "XML-Attribute", "<Document>\n<R A=\"" + big + "\"/></Document>", 2, "convert.max_field_bytes"},
		{"XML attributes", "A.xml", "XML-Attribute", "<Document>\n<R " + manyAttrs(10000) + "/></Document>", 2, "convert.max_record_bytes"},
		{"NDJSON line", "A.json", "JSON", "{\"a\":1}\n{\"a\":\"" + big + "\"}\n", 2, "convert.max_record_bytes"},
		{"JSON array object", "A.json", "JSON", "[{\"a\":1},{\"a\":\"" + big + "\"}]", 2, "record 2 is longer than convert.max_record_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pkg := filepath.Join(dir, "p.zip")
			buildPackage(t, pkg, []manifestEntry{
				{name: "Good", file: "Good.csv", format: "CSV", data: []byte("A,B\r\n1,2\r\n")},
				{name: "Hostile", file: tc.file, format: tc.format, data: []byte(tc.data)},
			})
			conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), limited)
			require.NoError(t, err, "a record limit fails the entity, not the package")
			require.Len(t, conv.Results, 1)
			require.Equal(t, "Good", conv.Results[0].Entity)
			require.Len(t, conv.Failures, 1)
			f := conv.Failures[0]
			require.Equal(t, ReasonLimit, f.Reason, f.Error())
			require.ErrorIs(t, f, ErrLimitExceeded)
			require.Equal(t, tc.line, f.Line, f.Error())
			require.Contains(t, f.Error(), tc.key)
			require.Contains(t, f.Error(), "p.zip: "+tc.file)
		})
	}
}

// TestUnterminatedQuoteNamesWhereItOpened: a quote left open at the end of
// a file is reported at the line where it opened, not the last line.
func TestUnterminatedQuoteNamesWhereItOpened(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "p.zip")
	buildPackage(t, pkg, []manifestEntry{{name: "A", file: "A.csv", format: "CSV",
		data: []byte("A,B\r\n1,\"open\r\n" + strings.Repeat("2,3\r\n", 100))}})
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
	require.NoError(t, err)
	require.Len(t, conv.Failures, 1)
	require.EqualValues(t, 2, conv.Failures[0].Line)
	require.Contains(t, conv.Failures[0].Error(), "the quote opened on line 2 is never closed")
}

// TestHostileManifests: a Manifest.xml nested too deep or too large fails
// the package as limit_exceeded.
func TestHostileManifests(t *testing.T) {
	t.Parallel()
	deep := `<?xml version="1.0"?><DataManagementPackageManifest xmlns="` + Namespace + `">` + strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000) + `</DataManagementPackageManifest>`
	var desc strings.Builder
	for i := 0; desc.Len() < 9<<20; i++ {
		fmt.Fprintf(&desc, "%d ", i*7919%1000003) // compresses too little to trip max_ratio
	}
	large := `<?xml version="1.0"?><DataManagementPackageManifest xmlns="` + Namespace + `"><Description>` + desc.String() + `</Description></DataManagementPackageManifest>`
	for name, manifest := range map[string]string{"deep": deep, "large": large} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pkg := filepath.Join(dir, "p.zip")
			rawZip(t, pkg, [2]string{"Manifest.xml", manifest}, [2]string{"A.csv", "A\r\n1\r\n"})
			_, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
			var de *Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, ReasonLimit, de.Reason, err.Error())
			require.Equal(t, "Manifest.xml", de.File)
		})
	}
}

// TestDuplicateEntryNamesAreUnsafe: two entries of one name (in any case)
// reject the package instead of letting the last one win.
func TestDuplicateEntryNamesAreUnsafe(t *testing.T) {
	t.Parallel()
	for name, entries := range map[string][][2]string{
		"two manifests":    {{"Manifest.xml", "<x/>"}, {"A.csv", "A\r\n1\r\n"}, {"Manifest.xml", "<y/>"}},
		"two entity files": {{"A.csv", "A\r\n1\r\n"}, {"A.csv", "A\r\n2\r\n"}},
		"differing case":   {{"Data/A.csv", "A\r\n1\r\n"}, {"data/a.CSV", "A\r\n2\r\n"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pkg := filepath.Join(dir, "p.zip")
			rawZip(t, pkg, entries...)
			_, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
			var de *Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, ReasonUnsafe, de.Reason)
			require.Contains(t, err.Error(), "appears more than once")
		})
	}
}

// TestWorkbookPartsGetThePackageLimits: a sheet inside an .xlsx that
// inflates past max_ratio, or a shared string table past its limits, is
// refused before excelize reads it; temporary files live under WorkDir.
func TestWorkbookPartsGetThePackageLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A workbook whose sheet is 8 MB of spaces (ratio ~1000).
	bomb := filepath.Join(dir, "bomb.xlsx")
	good := filepath.Join(dir, "good.xlsx")
	writeXLSX(t, good, 10)
	zr, err := zip.OpenReader(good)
	require.NoError(t, err)
	var entries [][2]string
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		require.NoError(t, err)
		rc.Close()
		data := b.String()
		if f.Name == "xl/worksheets/sheet1.xml" {
			data = strings.Replace(data, "<sheetData>", "<sheetData>"+strings.Repeat(" ", 8<<20), 1)
		}
		entries = append(entries, [2]string{f.Name, data})
	}
	zr.Close()
	rawZip(t, bomb, entries...)
	bombData, err := os.ReadFile(bomb)
	require.NoError(t, err)

	// A workbook with 3,000 distinct shared strings.
	strs := filepath.Join(dir, "strings.xlsx")
	f := excelize.NewFile()
	for i := range 3000 {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		require.NoError(t, f.SetCellValue("Sheet1", cell, fmt.Sprintf("distinct string %d", i)))
	}
	require.NoError(t, f.SaveAs(strs))
	strsData, err := os.ReadFile(strs)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		data []byte
		opts Options
		want string
	}{
		{"sheet past max_ratio", bombData, Options{MaxRatio: 100}, "max_ratio"},
		{"too many shared strings", strsData, Options{MaxSharedStrings: 1000}, "convert.max_shared_strings (1000)"},
		{"shared strings too large", strsData, Options{MaxSharedStringsBytes: 4096}, "convert.max_shared_strings_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			pkg := filepath.Join(d, "p.zip")
			buildPackage(t, pkg, []manifestEntry{{name: "Assets", file: "Assets.xlsx", format: "EXCEL", data: tc.data}})
			work := filepath.Join(d, "work")
			require.NoError(t, os.MkdirAll(work, 0o755))
			tc.opts.WorkDir = work
			conv, err := Convert(context.Background(), pkg, filepath.Join(d, "out"), tc.opts)
			var msg string
			var reason Reason
			if err != nil {
				var de *Error
				require.ErrorAs(t, err, &de)
				msg, reason = err.Error(), de.Reason
			} else {
				require.Len(t, conv.Failures, 1)
				msg, reason = conv.Failures[0].Error(), conv.Failures[0].Reason
			}
			require.Equal(t, ReasonLimit, reason, msg)
			require.Contains(t, msg, tc.want)
			left, _ := os.ReadDir(work)
			require.Empty(t, left, "temporary files are removed")
		})
	}

	// Within the limits, the workbook converts, with its temp file under WorkDir.
	d := t.TempDir()
	pkg := filepath.Join(d, "p.zip")
	buildPackage(t, pkg, []manifestEntry{{name: "Assets", file: "Assets.xlsx", format: "EXCEL", data: strsData}})
	work := filepath.Join(d, "work")
	require.NoError(t, os.MkdirAll(work, 0o755))
	conv, err := Convert(context.Background(), pkg, filepath.Join(d, "out"), Options{WorkDir: work, CreateTemp: func(dir, pattern string) (*os.File, error) {
		if strings.HasPrefix(pattern, ".xlsx") {
			require.Equal(t, work, dir, "the workbook is taken out of the package into work_dir")
		}
		return os.CreateTemp(dir, pattern)
	}})
	require.NoError(t, err)
	require.Len(t, conv.Results, 1)
	require.EqualValues(t, 2999, conv.Results[0].Records)
}
