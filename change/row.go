package change

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// errSyntax marks a row that is not one JSON object.
var errSyntax = errors.New("not a JSON object")

// member is one top-level member of a row: its name as written (with its
// quotes) and its value as written.
type member struct {
	name, value []byte
}

// scanObject calls fn with each top-level member of the JSON object b, in
// order. It checks the object's structure (strings, nesting, separators),
// not the spelling of numbers and literals: the rows it reads are the
// converter's output, and a value is compared and copied as written.
func scanObject(b []byte, fn func(m member) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: does not start with {", errSyntax)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("%w: a member name must be a string (byte %d)", errSyntax, i)
		}
		end, err := scanString(b, i)
		if err != nil {
			return err
		}
		name := b[i:end]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("%w: expected : after %s (byte %d)", errSyntax, name, i)
		}
		i = skipSpace(b, i+1)
		vend, err := scanValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(member{name: name, value: b[i:vend]}); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return fmt.Errorf("%w: unterminated object", errSyntax)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return fmt.Errorf("%w: expected , or } (byte %d)", errSyntax, i)
		}
	}
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return fmt.Errorf("%w: text after the object (byte %d)", errSyntax, i)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanString returns the index after the string that starts at b[i]
// ('"'), checking its escapes and that it holds no control character.
func scanString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, fmt.Errorf("%w: a control character in a string (byte %d)", errSyntax, j)
		case c == '\\':
			if j+1 >= len(b) {
				break
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) || !isHex(b[j+2:j+6]) {
					return 0, fmt.Errorf("%w: a bad \\u escape (byte %d)", errSyntax, j)
				}
				j += 5
			default:
				return 0, fmt.Errorf("%w: a bad escape (byte %d)", errSyntax, j)
			}
		}
	}
	return 0, fmt.Errorf("%w: unterminated string (byte %d)", errSyntax, i)
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// scanValue returns the index after the value that starts at b[i]. A
// nested array or object is checked whole by encoding/json (rows are
// flat as a rule); a number or literal by its grammar.
func scanValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: missing value", errSyntax)
	}
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := scanString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					if !json.Valid(b[i : j+1]) {
						return 0, fmt.Errorf("%w: a malformed nested value (byte %d)", errSyntax, i)
					}
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: unterminated %c (byte %d)", errSyntax, b[i], i)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
		j++
	}
	if !validLiteral(b[i:j]) {
		return 0, fmt.Errorf("%w: %q is not a JSON value (byte %d)", errSyntax, b[i:j], i)
	}
	return j, nil
}

// validLiteral: true, false, null or a JSON number.
func validLiteral(v []byte) bool {
	switch string(v) {
	case "true", "false", "null":
		return true
	}
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && '1' <= v[i] && v[i] <= '9':
		i = digits(v, i)
	default:
		return false
	}
	if i < len(v) && v[i] == '.' {
		start := i + 1
		if i = digits(v, start); i == start {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		start := i
		if i = digits(v, i); i == start {
			return false
		}
	}
	return i == len(v)
}

// digits returns where the run of ASCII digits from i ends.
func digits(v []byte, i int) int {
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	return i
}

// canonical is a value as compared: a string by its text (escapes
// resolved, so "M\u00fcnchen" equals "München"), anything else as
// written; a leading byte keeps the string "10" apart from the number 10.
func canonical(dst, v []byte) []byte {
	if len(v) > 0 && v[0] == '"' {
		dst = append(dst, 's')
		if bytes.IndexByte(v, '\\') < 0 {
			return append(dst, v[1:len(v)-1]...)
		}
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			return append(dst, s...)
		}
		return append(dst, v...) // not valid JSON: compared as written
	}
	return append(append(dst, 'v'), v...)
}

// sameValue reports whether two values are equal as compared.
func sameValue(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if (bytes.IndexByte(a, '\\') < 0 && bytes.IndexByte(b, '\\') < 0) || len(a) == 0 || len(b) == 0 || a[0] != '"' || b[0] != '"' {
		return false
	}
	return bytes.Equal(canonical(nil, a), canonical(nil, b))
}

// nameText is a member name's text (quotes off, escapes resolved).
func nameText(name []byte) string {
	if bytes.IndexByte(name, '\\') < 0 {
		return string(name[1 : len(name)-1])
	}
	var s string
	if err := json.Unmarshal(name, &s); err != nil || !utf8.ValidString(s) {
		return string(name[1 : len(name)-1])
	}
	return s
}

// keyColumns are the key columns of an entity, with each name also as a
// JSON string, to match member names without decoding them.
type keyColumns struct {
	names  []string
	quoted [][]byte
}

func newKeyColumns(names []string) keyColumns {
	k := keyColumns{names: names}
	for _, n := range names {
		q, _ := appendJSONString(nil, n)
		k.quoted = append(k.quoted, q)
	}
	return k
}

// index is the key column a member name is, or -1.
func (k keyColumns) index(name []byte) int {
	for i, q := range k.quoted {
		if bytes.Equal(q, name) {
			return i
		}
	}
	if bytes.IndexByte(name, '\\') >= 0 { // spelled with escapes: compare the text
		text := nameText(name)
		for i, n := range k.names {
			if n == text {
				return i
			}
		}
	}
	return -1
}

// keyOf builds a row's sort key and key object from its key columns: the
// sort key is each column's canonical value, length-prefixed, so equal
// keys are equal bytes; the key object is {"col":value,…} as written. A
// missing column is a *MissingKeyError.
func (k keyColumns) keyOf(row []byte, sortKey, keyJSON []byte, found [][]byte) ([]byte, []byte, error) {
	for i := range found {
		found[i] = nil
	}
	err := scanObject(row, func(m member) error {
		if i := k.index(m.name); i >= 0 && found[i] == nil {
			found[i] = m.value
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	keyJSON = append(keyJSON, '{')
	for i, v := range found {
		if v == nil {
			return nil, nil, &MissingKeyError{Column: k.names[i]}
		}
		start := len(sortKey)
		sortKey = append(sortKey, 0) // the length, set below
		sortKey = canonical(sortKey, v)
		sortKey = fixLength(sortKey, start)
		if i > 0 {
			keyJSON = append(keyJSON, ',')
		}
		keyJSON = append(append(append(keyJSON, k.quoted[i]...), ':'), v...)
	}
	return sortKey, append(keyJSON, '}'), nil
}

// fixLength rewrites the one-byte length placeholder at start with the
// real length of what follows it.
func fixLength(b []byte, start int) []byte {
	n := len(b) - start - 1
	if n < 0x80 {
		b[start] = byte(n)
		return b
	}
	var l [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(l[:], uint64(n))
	b = append(b, l[:ln-1]...) // room for the longer prefix
	copy(b[start+ln:], b[start+1:start+1+n])
	copy(b[start:], l[:ln])
	return b
}

func appendJSONString(dst []byte, s string) ([]byte, error) {
	b, err := json.Marshal(s)
	return append(dst, b...), err
}
