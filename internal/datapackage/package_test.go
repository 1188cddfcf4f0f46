package datapackage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// manifestEntry is one entity of a test package.
type manifestEntry struct {
	name, file, format, sheet string
	data                      []byte
}

// buildPackage writes a DMF zip with a UTF-16 manifest for entries.
func buildPackage(t testing.TB, path string, entries []manifestEntry) {
	t.Helper()
	var m strings.Builder
	m.WriteString(`<?xml version="1.0" encoding="utf-16"?><DataManagementPackageManifest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="` + Namespace + `"><DefinitionGroupName>Golden</DefinitionGroupName><PackageEntityList>`)
	for _, e := range entries {
		fmt.Fprintf(&m, `<DataManagementPackageEntityData><EntityName>%s</EntityName><ExcelSheetName>%s</ExcelSheetName><InputFilePath>%s</InputFilePath><SourceFormat>%s</SourceFormat></DataManagementPackageEntityData>`, e.name, e.sheet, e.file, e.format)
	}
	m.WriteString(`</PackageEntityList></DataManagementPackageManifest>`)
	files := map[string][]byte{"Manifest.xml": finopssim.UTF16LE(m.String()),
		"PackageHeader.xml": finopssim.UTF16LE(`<DataManagementPackageHeader xmlns="` + Namespace + `"><PackageVersion>2</PackageVersion></DataManagementPackageHeader>`)}
	for _, e := range entries {
		files[e.file] = e.data
	}
	writeZip(t, path, files)
}

func writeZip(t testing.TB, path string, files map[string][]byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, finopssim.ZipMap(files), 0o600))
}

func input(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "input", name))
	require.NoError(t, err)
	return b
}

// checkGolden compares got with testdata/golden/name (or rewrites it with -update).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.WriteFile(p, got, 0o644))
		return
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "missing golden file; run go test -update")
	require.Equal(t, string(want), string(got), "output differs from %s", p)
}

func resultsByEntity(c *Conversion) map[string]Result {
	out := map[string]Result{}
	for _, r := range c.Results {
		out[r.Entity] = r
	}
	return out
}

func TestGoldenEveryFormatAndEncoding(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	xlsx := filepath.Join(dir, "assets.xlsx")
	writeXLSX(t, xlsx, 3)
	xlsxData, err := os.ReadFile(xlsx)
	require.NoError(t, err)
	entries := []manifestEntry{
		{name: "CSV UTF-8 BOM CRLF", file: "comma-utf8-bom.csv", format: "CSV"},
		{name: "CSV LF no BOM", file: "comma-lf-nobom.csv", format: "CSV"},
		{name: "Semicolon", file: "semicolon.csv", format: "Semicolon"},
		{name: "Tab", file: "tab.tsv", format: "TSV"},
		{name: "Pipe", file: "pipe.csv", format: "CSV"},
		{name: "Colon", file: "colon.csv", format: "CSV"},
		{name: "CSV-Unicode LE", file: "unicode-utf16le.csv", format: "CSV-Unicode"},
		{name: "CSV-Unicode BE", file: "unicode-utf16be.csv", format: "CSV-Unicode"},
		{name: "XML element", file: "xml-element.xml", format: "XML-Element"},
		{name: "XML element UTF-16", file: "xml-element-utf16.xml", format: "XML-Element"},
		{name: "XML attribute", file: "xml-attribute.xml", format: "XML-Attribute"},
		{name: "JSON array", file: "array.json", format: "JSON"},
		{name: "NDJSON", file: "lines.ndjson", format: "JSON"},
		{name: "Fixed asset major type", file: "Fixed asset major type.xlsx", format: "EXCEL", sheet: "Sheet1", data: xlsxData},
	}
	for i := range entries {
		if entries[i].data == nil {
			entries[i].data = input(t, entries[i].file)
		}
	}
	pkg := filepath.Join(dir, "golden.zip")
	buildPackage(t, pkg, entries)
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
	require.NoError(t, err)
	require.Empty(t, conv.Failures)
	require.True(t, conv.HasManifest)
	require.Equal(t, "Golden", conv.DefinitionGroup)
	require.Equal(t, "2", conv.PackageVersion)
	got := resultsByEntity(conv)
	require.Len(t, got, len(entries))
	for _, e := range entries {
		r := got[e.name]
		require.Equal(t, e.format, r.SourceFormat, e.name)
		data, err := os.ReadFile(r.Path)
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, hex.EncodeToString(sum[:]), r.SHA256)
		require.Equal(t, int64(len(data)), r.Bytes)
		require.True(t, json.Valid(data), e.name)
		checkGolden(t, strings.TrimSuffix(e.file, filepath.Ext(e.file))+".json", data)
	}
	require.Equal(t, int64(5), got["CSV UTF-8 BOM CRLF"].Records)
	require.Equal(t, int64(3), got["Fixed asset major type"].Records)
}

func TestGoldenWindows1252(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "p.zip")
	buildPackage(t, pkg, []manifestEntry{{name: "Customer groups", file: "Customer groups.csv", format: "CSV", data: input(t, "windows-1252.csv")}})
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{Encoding: "windows-1252"})
	require.NoError(t, err)
	data, err := os.ReadFile(conv.Results[0].Path)
	require.NoError(t, err)
	checkGolden(t, "windows-1252.json", data)
	// Decoded as cp1252 it equals the UTF-8 input's conversion.
	want, err := os.ReadFile(filepath.Join("testdata", "golden", "comma-utf8-bom.json"))
	require.NoError(t, err)
	require.Equal(t, string(want), string(data))
}

func TestBareFileAndManifestlessZip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bare := filepath.Join(dir, "download.bin")
	require.NoError(t, os.WriteFile(bare, input(t, "comma-utf8-bom.csv"), 0o600))
	conv, err := Convert(context.Background(), bare, filepath.Join(dir, "out1"), Options{BareName: "Customer groups"})
	require.NoError(t, err)
	require.Len(t, conv.Results, 1)
	require.Equal(t, "Customer groups", conv.Results[0].Entity)
	require.Equal(t, "CSV", conv.Results[0].SourceFormat)
	require.False(t, conv.HasManifest)

	zipPath := filepath.Join(dir, "files.zip")
	writeZip(t, zipPath, map[string][]byte{"Vendors.csv": input(t, "semicolon.csv"), "Currencies.xml": input(t, "xml-attribute.xml")})
	conv, err = Convert(context.Background(), zipPath, filepath.Join(dir, "out2"), Options{})
	require.NoError(t, err)
	got := resultsByEntity(conv)
	require.Equal(t, "CSV", got["Vendors"].SourceFormat)
	require.Equal(t, "XML-Attribute", got["Currencies"].SourceFormat)
	require.Equal(t, int64(5), got["Vendors"].Records)
}

func TestEntityErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "p.zip")
	good := input(t, "comma-utf8-bom.csv")
	badQuote := []byte("A,B\r\n1,2\r\n3,\"x\"y\r\n")
	badCount := []byte("A,B\r\n1,2\r\n3\r\n")
	badXML := []byte("<Document><R><A>1</A></R>\n<R><A>2</B></R></Document>")
	buildPackage(t, pkg, []manifestEntry{
		{name: "Customer groups", file: "Customer groups.csv", format: "CSV", data: good},
		{name: "Vendors", file: "Vendors.csv", format: "CSV", data: badQuote},
		{name: "Banks", file: "Banks.csv", format: "CSV", data: badCount},
		{name: "Currencies", file: "Currencies.xml", format: "XML-Element", data: badXML},
		{name: "Ledger", file: "Ledger.txt", format: "Fixed width", data: []byte("abc")},
	})
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
	require.NoError(t, err)
	require.Len(t, conv.Results, 1, "the good entity is kept")
	msgs := map[string]string{}
	reasons := map[string]Reason{}
	for _, f := range conv.Failures {
		msgs[f.Entity] = f.Error()
		reasons[f.Entity] = f.Reason
	}
	require.Equal(t, `p.zip: Vendors.csv line 3: extraneous or missing " in quoted field`, msgs["Vendors"])
	require.Equal(t, `p.zip: Banks.csv line 3: wrong number of fields: record has 1 fields, the header has 2`, msgs["Banks"])
	require.Contains(t, msgs["Currencies"], "p.zip: Currencies.xml line 2:")
	require.Equal(t, `p.zip: Ledger.txt: unsupported source format "Fixed width" for entity "Ledger"`, msgs["Ledger"])
	require.Equal(t, ReasonUnsupported, reasons["Ledger"])
	require.Equal(t, ReasonConvert, reasons["Vendors"])
	entries, err := os.ReadDir(filepath.Join(dir, "out"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "failed entities leave no partial files")
}

func TestCompressionAndNDJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "p.zip")
	buildPackage(t, pkg, []manifestEntry{{name: "Customer groups", file: "Customer groups.csv", format: "CSV", data: input(t, "comma-utf8-bom.csv")}})
	plain, err := os.ReadFile(filepath.Join("testdata", "golden", "comma-utf8-bom.json"))
	require.NoError(t, err)
	for _, tc := range []struct {
		compress, encoding string
		decode             func(io.Reader) (io.Reader, error)
	}{
		{CompressGzip, "gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{CompressZstd, "zstd", func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) }},
	} {
		conv, err := Convert(context.Background(), pkg, filepath.Join(dir, tc.compress), Options{Compress: tc.compress})
		require.NoError(t, err)
		r := conv.Results[0]
		require.Equal(t, tc.encoding, r.ContentEncoding)
		raw, err := os.ReadFile(r.Path)
		require.NoError(t, err)
		sum := sha256.Sum256(raw)
		require.Equal(t, hex.EncodeToString(sum[:]), r.SHA256, "hash of the stored (compressed) bytes")
		dec, err := tc.decode(bytes.NewReader(raw))
		require.NoError(t, err)
		got, err := io.ReadAll(dec)
		require.NoError(t, err)
		require.Equal(t, string(plain), string(got))
	}
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "nd"), Options{Format: FormatNDJSON})
	require.NoError(t, err)
	require.Equal(t, "application/x-ndjson", conv.Results[0].ContentType)
	data, err := os.ReadFile(conv.Results[0].Path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, 5)
	var arr []json.RawMessage
	require.NoError(t, json.Unmarshal(plain, &arr))
	for i, l := range lines {
		require.JSONEq(t, string(arr[i]), l)
	}
}

func TestEmptyEntityIsAnEmptyArray(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "p.zip")
	buildPackage(t, pkg, []manifestEntry{{name: "Empty", file: "Empty.csv", format: "CSV", data: []byte("\xef\xbb\xbfA,B\r\n")}})
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
	require.NoError(t, err)
	data, err := os.ReadFile(conv.Results[0].Path)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(data))
	require.Zero(t, conv.Results[0].Records)
}

func TestSimulatorPackageMatchesItsSourceData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := finopssim.SamplePackage("Vendors export", 40, 7)
	pkg := filepath.Join(dir, "sim.zip")
	require.NoError(t, os.WriteFile(pkg, p.Zip(), 0o600))
	conv, err := Convert(context.Background(), pkg, filepath.Join(dir, "out"), Options{})
	require.NoError(t, err)
	require.Empty(t, conv.Failures)
	got := resultsByEntity(conv)
	for _, e := range p.Entities {
		r := got[e.Name]
		require.Equal(t, e.Format, r.SourceFormat)
		data, err := os.ReadFile(r.Path)
		require.NoError(t, err)
		rows := decodeOrdered(t, data)
		require.Len(t, rows, len(e.Rows))
		for i, row := range e.Rows {
			for j, col := range e.Columns {
				want := row[j]
				if e.Format == "CSV" {
					want = strings.ReplaceAll(want, "\r\n", "\n") // encoding/csv semantics
				}
				require.Equal(t, col, rows[i][j][0], e.Name)
				require.Equal(t, want, rows[i][j][1], "%s row %d %s", e.Name, i, col)
			}
		}
	}
}

// decodeOrdered decodes a JSON array of flat objects keeping key order:
// rows → fields → [key, value].
func decodeOrdered(t testing.TB, data []byte) [][][2]string {
	t.Helper()
	var raws []json.RawMessage
	require.NoError(t, json.Unmarshal(data, &raws))
	out := make([][][2]string, 0, len(raws))
	for _, raw := range raws {
		d := json.NewDecoder(bytes.NewReader(raw))
		_, err := d.Token()
		require.NoError(t, err)
		var row [][2]string
		for d.More() {
			k, err := d.Token()
			require.NoError(t, err)
			var v string
			require.NoError(t, d.Decode(&v))
			row = append(row, [2]string{k.(string), v})
		}
		out = append(out, row)
	}
	return out
}

func TestCancelledConversionLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := finopssim.SamplePackage("x", 10, 1)
	pkg := filepath.Join(dir, "p.zip")
	require.NoError(t, os.WriteFile(pkg, p.Zip(), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Convert(ctx, pkg, filepath.Join(dir, "out"), Options{})
	require.ErrorIs(t, err, context.Canceled)
	entries, _ := os.ReadDir(filepath.Join(dir, "out"))
	require.Empty(t, entries)
}
