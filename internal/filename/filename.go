// Package filename makes names from outside (entity names, message ids)
// safe to use as one file name on any file system. It is the product's one
// sanitiser.
package filename

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLen bounds a name's bytes, well under every file system's limit.
const maxLen = 120

// Safe returns s as a file name: letters (any script), digits, '-', '_' and
// '.' are kept, everything else (spaces, separators, controls, invalid
// UTF-8) becomes '_', leading and trailing dots are dropped (no "..", no
// hidden files), and the result is at most 120 bytes of whole runes. An
// empty result becomes fallback.
func Safe(s, fallback string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'):
		case r >= utf8.RuneSelf && r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)):
		default:
			r = '_'
		}
		if b.Len()+utf8.RuneLen(r) > maxLen {
			break
		}
		b.WriteRune(r)
	}
	if name := strings.Trim(b.String(), "."); name != "" {
		return name
	}
	return fallback
}
