package datapackage

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// benchCSV returns the benchmark script's CSV (bench/genpkg), rows records.
func benchCSV(b *testing.B, rows int) []byte {
	b.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	finopssim.WriteCustomersCSV(bw, rows)
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func discardWriter(b *testing.B) *recordWriter {
	b.Helper()
	return newRecordWriter(context.Background(), newAsyncWriter(io.Discard, 3, -1), FormatJSON)
}

// BenchmarkCSVConverter measures the parser and JSON writer alone, from
// memory to io.Discard.
func BenchmarkCSVConverter(b *testing.B) {
	data := benchCSV(b, 100_000)
	defer func() { b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "records/s") }()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rw := discardWriter(b)
		c := newCSVConverter(bytes.NewReader(data[3:]), ',', rw)
		if err := c.readHeader(); err != nil {
			b.Fatal(err)
		}
		if err := c.convert(); err != nil {
			b.Fatal(err)
		}
		_ = rw.finish()
		_ = rw.sink.close()
	}
}

// BenchmarkEncodingCSV is the baseline in the same run: encoding/csv
// reading the same bytes into records (no JSON at all).
func BenchmarkEncodingCSV(b *testing.B) {
	data := benchCSV(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := csvReader(bytes.NewReader(data[3:]))
		for {
			if _, err := r.Read(); err != nil {
				break
			}
		}
	}
}

func BenchmarkXMLConverter(b *testing.B) {
	p := finopssim.SamplePackage("bench", 50_000, 1)
	data := p.Entities[2].Render()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rw := discardWriter(b)
		if err := convertXML(bytes.NewReader(data), rw); err != nil {
			b.Fatal(err)
		}
		_ = rw.finish()
		_ = rw.sink.close()
	}
	b.ReportMetric(float64(50_000*b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkXLSXConverter(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.xlsx")
	size := writeXLSX(b, path, 20_000)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		rw := discardWriter(b)
		if err := convertXLSX(path, "", Options{}.WithDefaults(), rw); err != nil {
			b.Fatal(err)
		}
		_ = rw.finish()
		_ = rw.sink.close()
	}
	b.ReportMetric(float64(20_000*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkConvertPackage measures the whole path: zip → read-ahead →
// convert → SHA-256 → file.
func BenchmarkConvertPackage(b *testing.B) {
	p := finopssim.SamplePackage("bench", 100_000, 1)
	p.Entities = p.Entities[:1]
	dir := b.TempDir()
	pkg := filepath.Join(dir, "pkg.zip")
	data := p.Zip()
	if err := os.WriteFile(pkg, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p.Entities[0].Render())))
	for b.Loop() {
		out := filepath.Join(dir, "out")
		if _, err := Convert(context.Background(), pkg, out, Options{}); err != nil {
			b.Fatal(err)
		}
		_ = os.RemoveAll(out)
	}
}
