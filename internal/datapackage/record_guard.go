package datapackage

import (
	"errors"
	"io"
)

// errGuardTripped is what recordGuard's reader returns once a record ran past
// its limit; the converter replaces it with the record's own error.
var errGuardTripped = errors.New("record ran past max_record_bytes")

// recordGuard bounds how much input one record may consume, for parsers
// that buffer a whole token or value before handing it over (encoding/xml's
// CharData, encoding/json's Decode): the parser cannot be stopped midway,
// but the input it reads can. The converter marks each record's start; a
// record that reads more than max bytes (plus slack for the parser's own
// read-ahead) fails the next Read.
type recordGuard struct {
	r     io.Reader
	max   int64
	slack int64
	n     int64 // bytes read since the last mark
}

func newRecordGuard(r io.Reader, max int) *recordGuard {
	return &recordGuard{r: r, max: int64(max), slack: 64 << 10}
}

func (g *recordGuard) Read(p []byte) (int, error) {
	if g.n > g.max+g.slack {
		return 0, errGuardTripped
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

// mark starts a new record.
func (g *recordGuard) mark() { g.n = 0 }
