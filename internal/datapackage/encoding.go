package datapackage

import (
	"fmt"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
)

// LookupEncoding resolves a code-page name ("utf-8", "utf-16le",
// "windows-1252", "1252", "cp1252"…). UTF-8 resolves to nil: no decoding.
func LookupEncoding(name string) (encoding.Encoding, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "", "utf-8", "utf8", "65001":
		return nil, nil
	case "utf-16le", "utf-16", "unicode", "1200":
		return unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), nil
	case "utf-16be", "1201":
		return unicode.UTF16(unicode.BigEndian, unicode.UseBOM), nil
	}
	if strings.HasPrefix(n, "cp") {
		n = "windows-" + strings.TrimPrefix(n, "cp")
	} else if _, err := fmt.Sscanf(n, "%d", new(int)); err == nil && !strings.Contains(n, "-") {
		n = "windows-" + n
	}
	enc, err := htmlindex.Get(n)
	if err != nil {
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	return enc, nil
}
