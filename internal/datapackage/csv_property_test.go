package datapackage

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// convertCSVBytes runs the CSV converter on data and returns the JSON output.
func convertCSVBytes(data []byte, delim byte) ([]byte, error) {
	var out bytes.Buffer
	sink := newAsyncWriter(&out, 2, int64(len(data)))
	rw := newRecordWriter(context.Background(), sink, FormatJSON)
	c := newCSVConverter(bytes.NewReader(data), delim, rw)
	err := c.readHeader()
	if err == nil {
		err = c.convert()
	}
	if err == nil {
		err = rw.finish()
	}
	if cerr := sink.close(); err == nil {
		err = cerr
	}
	return out.Bytes(), err
}

// referenceRead reads data with encoding/csv the way the converter is
// specified to: header row, then records of the header's width.
func referenceRead(data []byte, delim byte) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = rune(delim)
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("no header")
	}
	return recs, nil
}

// checkAgainstReference asserts the converter agrees with encoding/csv on
// data: both fail, or both succeed with the same values in the same order.
func checkAgainstReference(t testing.TB, data []byte, delim byte) {
	t.Helper()
	want, refErr := referenceRead(data, delim)
	got, err := convertCSVBytes(data, delim)
	if refErr != nil {
		require.Error(t, err, "encoding/csv rejects %q (%v) but the converter accepted it", data, refErr)
		return
	}
	require.NoError(t, err, "encoding/csv accepts %q", data)
	require.True(t, json.Valid(got), "invalid JSON for %q: %s", data, got)
	rows := decodeOrdered(t, got)
	require.Len(t, rows, len(want)-1, "input %q", data)
	header := want[0]
	for i, rec := range want[1:] {
		require.Len(t, rows[i], len(rec))
		for j, v := range rec {
			require.Equal(t, v, rows[i][j][1], "input %q row %d field %d", data, i, j)
			if header[j] != "" && !duplicate(header, j) {
				require.Equal(t, header[j], rows[i][j][0])
			}
		}
	}
}

func duplicate(h []string, j int) bool {
	for i := 0; i < j; i++ {
		if h[i] == h[j] {
			return true
		}
	}
	return false
}

// TestCSVMatchesEncodingCSV is the property test: for generated tables
// written with encoding/csv (every delimiter, CRLF or LF, fields with
// delimiters, quotes, line breaks and non-ASCII), the converter's JSON holds
// exactly what encoding/csv reads back.
func TestCSVMatchesEncodingCSV(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(42, 7))
	alphabet := []string{"a", "b", "Z", "0", " ", ",", ";", "\t", "|", ":", `"`, "\n", "\r\n", "ü", "€", "漢", "\\", "/", "\x01", "'"}
	field := func() string {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for iter := 0; iter < 2000; iter++ {
		delim := []byte{',', ';', '\t', '|', ':'}[r.IntN(5)]
		cols := 1 + r.IntN(6)
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Comma = rune(delim)
		w.UseCRLF = r.IntN(2) == 0
		header := make([]string, cols)
		for i := range header {
			header[i] = "COL" + string(rune('A'+i))
		}
		require.NoError(t, w.Write(header))
		for range r.IntN(6) {
			rec := make([]string, cols)
			for i := range rec {
				rec[i] = field()
			}
			if cols == 1 && rec[0] == "" {
				rec[0] = "x" // a lone empty field is an empty line, which encoding/csv skips on read
			}
			require.NoError(t, w.Write(rec))
		}
		w.Flush()
		checkAgainstReference(t, buf.Bytes(), delim)
	}
}

// TestCSVAgreesOnHandWrittenEdgeCases covers inputs encoding/csv's writer
// never produces: malformed quoting, ragged rows, empty lines, a final line
// without newline, stray carriage returns.
func TestCSVAgreesOnHandWrittenEdgeCases(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"A,B\n1,2", "A,B\r\n1,2\r", "A,B\n\n1,2\n\n", "A,B\r\n\r\n1,2\r\n",
		"A,B\n1,2,3\n", "A,B\n1\n", "A,B\n1,\"2\n", "A,B\n1,\"2\"x\n", "A,B\n1,x\"y\n",
		"A,B\n\"1\"\"\",\"\"\n", "A,B\n1\r2,3\n", "A,B\n\"a\r\nb\",c\n", "A,B\n\"a\rb\",c\n",
		"A\n\"\"\n", "A\n\n", "", "\n\n", "A,A\n1,2\n", ",\n1,2\n", "A,B\n ,\"x\"\n",
		"A,B\n\"x\" ,y\n", "A;B\n1;2\n",
	} {
		checkAgainstReference(t, []byte(in), ',')
	}
}

func FuzzCSVConverter(f *testing.F) {
	for _, s := range []string{"A,B\r\n1,2\r\n", "A,B\n\"x,\"\"y\"\"\n z\",2\n", "A\n\"\n", "A,B\n1,2,3\n", "\xef\xbb\xbfA\n1\n"} {
		f.Add([]byte(s), byte(','))
	}
	f.Add([]byte("A;B\n1;\"2;3\"\n"), byte(';'))
	f.Add([]byte("A,B\n1,\"never closed\n2,3\n"), byte(','))
	f.Fuzz(func(t *testing.T, data []byte, delim byte) {
		switch delim {
		case ',', ';', '\t', '|', ':':
		default:
			delim = ','
		}
		if !utf8ValidAll(data) {
			// Invalid UTF-8 becomes U+FFFD, as encoding/json does; only check
			// that the output is valid JSON.
			if out, err := convertCSVBytes(data, delim); err == nil {
				require.True(t, json.Valid(out))
			}
			return
		}
		checkAgainstReference(t, data, delim)
	})
}

func utf8ValidAll(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

func FuzzXMLConverter(f *testing.F) {
	f.Add([]byte(`<Document><R><A>1</A><B>x &amp; y</B></R><R A="2" B=""/></Document>`))
	f.Add([]byte(`<?xml version="1.0"?><Document><R><A><C/></A></R></Document>`))
	f.Add([]byte(`<Document>`))
	f.Add([]byte(`<Document><R><A>` + strings.Repeat("x", 3000) + `</A></R></Document>`)) // past the field limit below
	f.Add([]byte(`<Document><R ` + strings.Repeat(`a="1" `, 1000) + `/></Document>`))     // past the record limit
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		sink := newAsyncWriter(&out, 2, int64(len(data)))
		rw := newRecordWriter(context.Background(), sink, FormatJSON)
		rw.maxRecord, rw.maxField = 4<<10, 2<<10
		err := convertXML(bytes.NewReader(data), rw)
		if err == nil {
			err = rw.finish()
		}
		require.NoError(t, sink.close())
		if err == nil {
			require.True(t, json.Valid(out.Bytes()), "invalid JSON for %q: %s", data, out.Bytes())
		}
	})
}

func FuzzManifest(f *testing.F) {
	f.Add([]byte(`<DataManagementPackageManifest xmlns="` + Namespace + `"><PackageEntityList><DataManagementPackageEntityData><EntityName>A</EntityName><InputFilePath>A.csv</InputFilePath><SourceFormat>CSV</SourceFormat></DataManagementPackageEntityData></PackageEntityList></DataManagementPackageManifest>`))
	f.Add([]byte{0xFF, 0xFE, '<', 0, 'a', 0, '/', 0, '>', 0})
	f.Add([]byte{0xFE, 0xFF, 0, '<'})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err == nil {
			for _, e := range m.Entities {
				require.NotEmpty(t, strings.TrimSpace(e.EntityName))
				require.NotEmpty(t, strings.TrimSpace(e.InputFilePath))
			}
		}
		_, _ = ParseHeader(data)
	})
}

func TestDuplicateAndEmptyHeadersKeepEveryColumn(t *testing.T) {
	t.Parallel()
	out, err := convertCSVBytes([]byte("A,A,,\"B\"\"q\",A\r\n1,2,3,4,5\r\n"), ',')
	require.NoError(t, err)
	rows := decodeOrdered(t, out)
	require.Equal(t, [][2]string{{"A", "1"}, {"A_2", "2"}, {"column_3", "3"}, {`B"q`, "4"}, {"A_3", "5"}}, rows[0])
}
