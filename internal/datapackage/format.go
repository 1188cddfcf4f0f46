package datapackage

import (
	"bufio"
	"bytes"
	"io"
	"path/filepath"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

type kind int

const (
	kindUnsupported kind = iota
	kindDelimited
	kindXML
	kindXLSX
	kindJSON
)

// fileKind decides how to read an entity file from the manifest's
// SourceFormat (a user-defined name such as "CSV", "CSV-Unicode",
// "XML-Element", "EXCEL") and, where that says nothing, the file extension.
// delim is 0 when the delimiter must be sniffed.
func fileKind(sourceFormat, file string) (k kind, delim byte, utf16 bool) {
	sf := strings.ToUpper(sourceFormat)
	utf16 = strings.Contains(sf, "UNICODE")
	switch {
	case strings.Contains(sf, "FIXED"):
		return kindUnsupported, 0, false
	case strings.Contains(sf, "XML"):
		return kindXML, 0, utf16
	case strings.Contains(sf, "EXCEL"), strings.Contains(sf, "XLSX"):
		return kindXLSX, 0, false
	case strings.Contains(sf, "JSON"):
		return kindJSON, 0, false
	case strings.Contains(sf, "TSV"), strings.Contains(sf, "TAB"):
		return kindDelimited, '\t', utf16
	case strings.Contains(sf, "SEMICOLON"):
		return kindDelimited, ';', utf16
	case strings.Contains(sf, "PIPE"), strings.Contains(sf, "PSV"), strings.Contains(sf, "BAR"):
		return kindDelimited, '|', utf16
	case strings.Contains(sf, "COLON"):
		return kindDelimited, ':', utf16
	case strings.Contains(sf, "CSV"), strings.Contains(sf, "DELIMITED"), strings.Contains(sf, "TEXT"), strings.Contains(sf, "TXT"):
		return kindDelimited, 0, utf16
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".csv", ".txt":
		return kindDelimited, 0, utf16
	case ".tsv", ".tab":
		return kindDelimited, '\t', utf16
	case ".xml":
		return kindXML, 0, utf16
	case ".xlsx":
		return kindXLSX, 0, false
	case ".json", ".ndjson", ".jsonl":
		return kindJSON, 0, false
	}
	return kindUnsupported, 0, false
}

// derivedFormat names the format of a file without a manifest, from its
// extension (and for XML its shape).
func derivedFormat(file string, head []byte) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".csv", ".txt":
		return "CSV"
	case ".tsv", ".tab":
		return "TSV"
	case ".xml":
		return xmlStyle(head)
	case ".xlsx":
		return "EXCEL"
	case ".json":
		return "JSON"
	case ".ndjson", ".jsonl":
		return "NDJSON"
	}
	return strings.ToUpper(strings.TrimPrefix(filepath.Ext(file), "."))
}

// textReader returns br decoded to UTF-8: by byte-order mark first (which is
// consumed), else UTF-16 LE for "Unicode" formats, else fallback (nil:
// UTF-8).
func textReader(br *bufio.Reader, fallback encoding.Encoding, utf16 bool) io.Reader {
	head, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3)
		return br
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return transform.NewReader(br, unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder())
	case utf16:
		return transform.NewReader(br, unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder())
	case fallback != nil:
		return transform.NewReader(br, fallback.NewDecoder())
	}
	return br
}

// looksLikeText reports whether head could be the start of a text entity
// file (so a non-zip download is a bare file, not a corrupt package).
func looksLikeText(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	if bytes.HasPrefix(head, []byte{0xFF, 0xFE}) || bytes.HasPrefix(head, []byte{0xFE, 0xFF}) {
		return true
	}
	for _, b := range head {
		if b == 0 || (b < 0x20 && b != '\t' && b != '\r' && b != '\n' && b != '\f') {
			return false
		}
	}
	return true
}
