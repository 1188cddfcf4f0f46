package main

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// maxHostileRSS is the peak resident memory any package may cost.
const maxHostileRSS = 128 << 20

// entry is one file of a generated package; write streams its content.
type entry struct {
	name   string
	method uint16 // zip.Store (no compression: sizes do not trip max_ratio) or zip.Deflate
	write  func(w io.Writer) error
}

func text(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

// noise writes n bytes of letters without long runs: stored, the entry is
// as large as it says; deflated, it does not trip max_ratio. A 1 MiB block
// is made once and repeated (the tests run under -race, where generating
// every byte would take minutes).
func noise(n int) func(io.Writer) error {
	return func(w io.Writer) error {
		r := rand.New(rand.NewPCG(1, 2))
		block := make([]byte, 1<<20)
		for i := range block {
			block[i] = byte('a' + r.IntN(26))
		}
		for ; n > 0; n -= len(block) {
			if _, err := w.Write(block[:min(n, len(block))]); err != nil {
				return err
			}
		}
		return nil
	}
}

func concat(parts ...func(io.Writer) error) func(io.Writer) error {
	return func(w io.Writer) error {
		for _, p := range parts {
			if err := p(w); err != nil {
				return err
			}
		}
		return nil
	}
}

func repeat(s string, n int) func(io.Writer) error {
	return func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		for range n {
			if _, err := bw.WriteString(s); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
}

func writePackage(t *testing.T, path string, entries ...entry) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestCompression) })
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		require.NoError(t, err)
		require.NoError(t, e.write(w))
	}
	require.NoError(t, zw.Close())
}

func manifestFor(entity, file, format string) entry {
	m := `<?xml version="1.0" encoding="utf-16"?><DataManagementPackageManifest xmlns="` + datapackage.Namespace + `"><PackageEntityList>` +
		`<DataManagementPackageEntityData><EntityName>` + entity + `</EntityName><InputFilePath>` + file + `</InputFilePath><SourceFormat>` + format +
		`</SourceFormat></DataManagementPackageEntityData></PackageEntityList></DataManagementPackageManifest>`
	return entry{name: "Manifest.xml", method: zip.Deflate, write: text(string(finopssim.UTF16LE(m)))}
}

// workbookBomb is an .xlsx whose sheet inflates to size bytes of spaces.
func workbookBomb(t *testing.T, size int) func(io.Writer) error {
	return func(w io.Writer) error {
		zw := zip.NewWriter(w)
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestCompression) })
		parts := []entry{
			{"[Content_Types].xml", zip.Deflate, text(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>`)},
			{"_rels/.rels", zip.Deflate, text(`<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`)},
			{"xl/workbook.xml", zip.Deflate, text(`<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`)},
			{"xl/_rels/workbook.xml.rels", zip.Deflate, text(`<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`)},
			{"xl/worksheets/sheet1.xml", zip.Deflate, concat(text(`<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`),
				repeat(strings.Repeat(" ", 1<<20), size>>20), text(`</sheetData></worksheet>`))},
		}
		for _, e := range parts {
			pw, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
			if err != nil {
				return err
			}
			if err := e.write(pw); err != nil {
				return err
			}
		}
		return zw.Close()
	}
}

// TestHostilePackagesUnderTheRealBinary converts each hostile package with
// `exportbridge convert` in a child process and asserts the named error and
// the child's peak RSS (from its rusage).
func TestHostilePackagesUnderTheRealBinary(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	for _, tc := range []struct {
		name    string
		entries []entry
		want    []string
	}{
		{"CSV line of 80 MB", []entry{manifestFor("Customers", "Customers.csv", "CSV"),
			{"Customers.csv", zip.Store, concat(text("A,B\r\n1,"), noise(80*mb), text("\r\n"))}},
			[]string{"limit_exceeded", "Customers.csv line 2", "convert.max_record_bytes"}},
		{"CSV record of 80 MB in short fields", []entry{manifestFor("Customers", "Customers.csv", "CSV"),
			{"Customers.csv", zip.Store, concat(text("A,B\r\n"), repeat("abcdefgh,", 10*mb), text("\r\n"))}},
			[]string{"limit_exceeded", "Customers.csv line 2", "convert.max_record_bytes"}},
		{"CSV quote never closed in 100 MB", []entry{manifestFor("Customers", "Customers.csv", "CSV"),
			{"Customers.csv", zip.Store, concat(text("A,B\r\n1,2\r\n3,\"opens"), repeat("0123456789abcdef,x\r\n", 5*mb))}},
			[]string{"limit_exceeded", "Customers.csv line 3", "quoted field opened on line 3", "convert.max_record_bytes"}},
		{"XML text field of 80 MB", []entry{manifestFor("Vendors", "Vendors.xml", "XML-Element"),
			{"Vendors.xml", zip.Store, concat(text("<Document>\n<R>\n<A>"), noise(80*mb), text("</A></R></Document>"))}},
			[]string{"limit_exceeded", "Vendors.xml line 3", "convert.max_field_bytes"}},
		{"JSON object of 80 MB", []entry{manifestFor("Banks", "Banks.json", "JSON"),
			{"Banks.json", zip.Store, concat(text(`[{"a":"`), noise(80*mb), text(`"}]`))}},
			[]string{"limit_exceeded", "Banks.json", "convert.max_record_bytes"}},
		{"manifest of 60 MB nested 5 M deep", []entry{{"Manifest.xml", zip.Deflate, concat(repeat("<a>", 5*mb), repeat("</a>", 5*mb))},
			{"A.csv", zip.Store, text("A\r\n1\r\n")}},
			[]string{"limit_exceeded", "Manifest.xml"}},
		{"manifest nested 1 M deep", []entry{{"Manifest.xml", zip.Deflate, concat(text(`<DataManagementPackageManifest xmlns="`+datapackage.Namespace+`">`), repeat("<a>", mb), repeat("</a>", mb))},
			{"A.csv", zip.Store, text("A\r\n1\r\n")}},
			[]string{"limit_exceeded", "Manifest.xml", "nested deeper than 32"}},
		{"XLSX sheet of 64 MB of spaces", []entry{manifestFor("Assets", "Assets.xlsx", "EXCEL"),
			{"Assets.xlsx", zip.Store, workbookBomb(t, 64*mb)}},
			[]string{"limit_exceeded", "inside the workbook", "max_ratio"}},
		{"zip bomb", []entry{{"A.csv", zip.Deflate, concat(text("A\r\n"), repeat(strings.Repeat("0", mb), 64))}},
			[]string{"limit_exceeded", "max_ratio"}},
		{"duplicate entity file", []entry{{"A.csv", zip.Store, text("A\r\n1\r\n")}, {"A.csv", zip.Store, text("A\r\n2\r\n")}},
			[]string{"unsafe_entry", "appears more than once"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pkg := filepath.Join(dir, "hostile.zip")
			writePackage(t, pkg, tc.entries...)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// Through the spawner: the child's own peak, not this process's.
			cmd := exec.CommandContext(ctx, os.Args[0], binary, "convert", pkg, "--out", filepath.Join(dir, "out"))
			cmd.Env = append(os.Environ(), rssSpawnEnv+"=1")
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "%s", out)
			require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out)
			for _, w := range tc.want {
				require.Contains(t, string(out), w)
			}
			m := regexp.MustCompile(`peak_rss_kb=(\d+)`).FindSubmatch(out)
			require.NotNil(t, m, "the spawner reports the peak: %s", out)
			kb, err := strconv.ParseInt(string(m[1]), 10, 64)
			require.NoError(t, err)
			rss := kb * 1024 // kilobytes on Linux
			t.Logf("peak RSS %d MB: %s", rss>>20, strings.TrimSpace(string(out)))
			require.LessOrEqual(t, rss, int64(maxHostileRSS), fmt.Sprintf("peak RSS %d MB", rss>>20))
		})
	}
}
