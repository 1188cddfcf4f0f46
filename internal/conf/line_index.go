package conf

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// LineIndex maps key paths ("jobs[1].schedule", "connections.finops") to the
// line of a TOML document where they are written. It understands the TOML
// this project's config uses: [tables], [[arrays of tables]], dotted and
// quoted keys, and inline tables on one line. Keys it cannot place resolve
// to the line of their nearest enclosing table, which is still a useful
// pointer for a human.
type LineIndex map[string]int

// NewLineIndex scans data once.
func NewLineIndex(data []byte) LineIndex {
	idx := LineIndex{}
	arrays := map[string]int{} // array-of-tables name → count seen so far
	prefix := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[["):
			name := tableName(strings.TrimPrefix(line, "[["), "]]")
			prefix = fmt.Sprintf("%s[%d]", name, arrays[name])
			arrays[name]++
			idx.set(prefix, n)
		case strings.HasPrefix(line, "["):
			prefix = tableName(strings.TrimPrefix(line, "["), "]")
			idx.set(prefix, n)
		default:
			k, rest, ok := strings.Cut(line, "=")
			if !ok {
				continue // continuation of a multi-line array
			}
			key := Join(prefix, unquoteKey(k))
			idx.set(key, n)
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(rest, "{") { // inline table: index its keys on this line
				for _, part := range strings.Split(strings.Trim(rest, "{} "), ",") {
					if ik, _, ok := strings.Cut(part, "="); ok {
						idx.set(Join(key, unquoteKey(ik)), n)
					}
				}
			}
		}
	}
	return idx
}

func (idx LineIndex) set(key string, n int) {
	if _, ok := idx[key]; !ok {
		idx[key] = n
	}
}

// Line returns the line of key, or of its nearest known parent, or 0.
func (idx LineIndex) Line(key string) int {
	for key != "" {
		if n, ok := idx[key]; ok {
			return n
		}
		cut := max(strings.LastIndexByte(key, '.'), strings.LastIndexByte(key, '['))
		if cut <= 0 {
			break
		}
		key = key[:cut]
	}
	return 0
}

func tableName(s, closing string) string {
	if i := strings.Index(s, closing); i >= 0 {
		s = s[:i]
	}
	return unquoteKey(s)
}

// unquoteKey normalises a TOML key: trims space and quotes of each dotted part.
func unquoteKey(k string) string {
	parts := strings.Split(strings.TrimSpace(k), ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}
