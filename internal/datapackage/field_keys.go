package datapackage

import (
	"strconv"
)

// fieldKeys turns column or element names into the JSON key prefixes the
// converters write (`{"NAME":"` for the first field of a record, `,"NAME":"`
// after it), keeping every column: an empty name becomes column_<n>, and a
// repeated name gets a _2, _3… suffix so no JSON object has a duplicate key.
type fieldKeys struct {
	seen map[string]int
}

func newFieldKeys() *fieldKeys { return &fieldKeys{seen: map[string]int{}} }

// unique returns the key for the i-th (0-based) field named name.
func (k *fieldKeys) unique(i int, name string) string {
	if name == "" {
		name = "column_" + strconv.Itoa(i+1)
	}
	k.seen[name]++
	if n := k.seen[name]; n > 1 {
		return name + "_" + strconv.Itoa(n)
	}
	return name
}

// appendKey appends the prefix of a field: the separator, the escaped key,
// and the opening quote of the value.
func appendKey(dst []byte, first bool, key string) []byte {
	sep := byte(',')
	if first {
		sep = '{'
	}
	dst = append(dst, sep, '"')
	dst = appendJSONString(dst, []byte(key))
	return append(dst, '"', ':', '"')
}
