// Package change says what changed between two snapshots of an entity:
// which rows were inserted, which were updated (and how: the fields'
// values before), which were deleted. FinOps exports snapshots and cannot
// say what disappeared; exportbridge keeps consecutive snapshots, so it
// can.
//
// Compare works in bounded memory on snapshots of any size: each is read
// once and sorted by key in chunks spilled to disk (Options.ChunkBytes at
// a time), then the two sorted streams are merged. The snapshots are the
// converter's own output (a JSON array or NDJSON, one record per line);
// the changes are NDJSON, one line per changed row, in no particular order
// (the same for the same snapshots):
//
//	{"op":"insert","key":{…},"row":{…}}
//	{"op":"update","key":{…},"row":{…},"before":{…the changed fields' values before…}}
//	{"op":"delete","key":{…},"before":{…the row before…}}
package change

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Options configure Compare.
type Options struct {
	// Keys are the entity's key columns; together they identify a row.
	Keys []string
	// TempDir is where sorted chunks are spilled (work_dir). Default: the
	// system's.
	TempDir string
	// ChunkBytes bounds the rows held in memory while sorting one
	// snapshot. Default 6 MiB.
	ChunkBytes int
	// MaxRowBytes bounds one row. Default 16 MiB.
	MaxRowBytes int
}

func (o Options) withDefaults() Options {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 6 << 20
	}
	if o.MaxRowBytes <= 0 {
		o.MaxRowBytes = 16 << 20
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	return o
}

// Summary counts what Compare found.
type Summary struct {
	Inserted, Updated, Deleted, Unchanged int64
	// Before and After are the rows of each snapshot.
	Before, After int64
}

// Changed reports whether any row changed.
func (s Summary) Changed() bool { return s.Inserted+s.Updated+s.Deleted > 0 }

// ErrBadSnapshot marks a snapshot's content that cannot be compared: a
// duplicate key, a missing key column, a line that is not a record. The
// errors that carry it say which snapshot, line and key.
var ErrBadSnapshot = errors.New("the snapshot cannot be compared")

// DuplicateKeyError: two rows of one snapshot have the same key.
type DuplicateKeyError struct {
	Snapshot string // "before" or "after"
	Key      string // the key object, as JSON
	Lines    [2]int64
}

func (e *DuplicateKeyError) Error() string {
	return fmt.Sprintf("%s snapshot: key %s is on line %d and on line %d", e.Snapshot, e.Key, e.Lines[0], e.Lines[1])
}

func (e *DuplicateKeyError) Unwrap() error { return ErrBadSnapshot }

// MissingKeyError: a row lacks a key column.
type MissingKeyError struct {
	Snapshot string
	Column   string
	Line     int64
}

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("%s snapshot, line %d: no key column %q", e.Snapshot, e.Line, e.Column)
}

func (e *MissingKeyError) Unwrap() error { return ErrBadSnapshot }

// RowError: a line is not a record.
type RowError struct {
	Snapshot string
	Line     int64
	Err      error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("%s snapshot, line %d: %v", e.Snapshot, e.Line, e.Err)
}

func (e *RowError) Unwrap() []error { return []error{ErrBadSnapshot, e.Err} }

// Compare writes to out the changes from the snapshot before to the
// snapshot after. A nil before is an empty snapshot (every row is an
// insert). Errors wrapping ErrBadSnapshot come from a snapshot's content;
// others from reading, writing or the disk.
func Compare(ctx context.Context, before, after io.Reader, out io.Writer, opt Options) (Summary, error) {
	opt = opt.withDefaults()
	if len(opt.Keys) == 0 {
		return Summary{}, errors.New("change: no key columns")
	}
	keys := newKeyColumns(opt.Keys)
	var sum Summary
	// The two snapshots are read and sorted at once, each on its own core
	// where there are two, each within its own ChunkBytes.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type sortedSnapshot struct {
		st    stream
		close func()
		err   error
	}
	afterDone := make(chan sortedSnapshot, 1)
	go func() {
		st, closeFn, err := sortSnapshot(ctx, after, "after", keys, opt, &sum.After)
		if err != nil {
			cancel() // the other is of no use now
		}
		afterDone <- sortedSnapshot{st, closeFn, err}
	}()
	a, closeA, errA := sortSnapshot(ctx, before, "before", keys, opt, &sum.Before)
	if errA != nil {
		cancel()
	}
	bs := <-afterDone
	if closeA != nil {
		defer closeA()
	}
	if bs.close != nil {
		defer bs.close()
	}
	// Report the snapshot's own fault, not the cancellation it caused.
	switch {
	case errA != nil && !errors.Is(errA, context.Canceled):
		return sum, errA
	case bs.err != nil && !errors.Is(bs.err, context.Canceled):
		return sum, bs.err
	case errA != nil:
		return sum, errA
	case bs.err != nil:
		return sum, bs.err
	}
	b := bs.st
	w := bufio.NewWriterSize(out, 256<<10)
	if err := merge(ctx, keys, a, b, w, &sum); err != nil {
		return sum, err
	}
	return sum, w.Flush()
}

// sortSnapshot reads a snapshot's rows into a sorter and returns them in
// key order.
func sortSnapshot(ctx context.Context, r io.Reader, name string, keys keyColumns, opt Options, rows *int64) (stream, func(), error) {
	s := newSorter(opt.TempDir, opt.ChunkBytes)
	if r == nil {
		st, _ := s.sorted()
		return st, s.close, nil
	}
	var sortKey, keyJSON []byte // reused: add copies them
	found := make([][]byte, len(keys.names))
	err := readRows(r, opt.MaxRowBytes, func(line int64, row []byte) error {
		if line&0xfff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var err error
		if sortKey, keyJSON, err = keys.keyOf(row, sortKey[:0], keyJSON[:0], found); err != nil {
			return annotate(err, name, line)
		}
		*rows++
		return s.add(record{sortKey: sortKey, row: row, line: line})
	})
	if err != nil {
		s.close()
		return nil, nil, err
	}
	st, err := s.sorted()
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return &keyedStream{st: st, name: name, keys: keys}, s.close, nil
}

func annotate(err error, snapshot string, line int64) error {
	var mk *MissingKeyError
	if errors.As(err, &mk) {
		mk.Snapshot, mk.Line = snapshot, line
		return mk
	}
	return &RowError{Snapshot: snapshot, Line: line, Err: err}
}

// readRows calls fn with each record of a snapshot and its line: a JSON
// array with one record per line ("[", "{…},", …, "]"), or NDJSON.
func readRows(r io.Reader, maxRow int, fn func(line int64, row []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRow+2)
	var line int64
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		switch {
		case len(b) == 0, line == 1 && len(b) == 1 && b[0] == '[', len(b) == 1 && b[0] == ']':
			continue
		case line == 1 && b[0] == '[':
			// "[{…}," on the first line.
			b = bytes.TrimSpace(b[1:])
		}
		b = bytes.TrimSuffix(b, []byte(","))
		if len(b) > 0 && b[len(b)-1] == ']' && !bytes.HasSuffix(b, []byte("}")) {
			b = bytes.TrimSpace(bytes.TrimSuffix(b, []byte("]")))
		}
		if err := fn(line, b); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &RowError{Line: line + 1, Err: fmt.Errorf("a row is longer than %d bytes", maxRow)}
		}
		return err
	}
	return nil
}

// keyedStream is a sorted stream that refuses duplicate keys.
type keyedStream struct {
	st       stream
	name     string
	keys     keyColumns
	prevKey  []byte
	prevLine int64
	started  bool
}

func (k *keyedStream) next() (*record, error) {
	r, err := k.st.next()
	if err != nil || r == nil {
		return r, err
	}
	if k.started && bytes.Equal(r.sortKey, k.prevKey) {
		return nil, &DuplicateKeyError{Snapshot: k.name, Key: string(k.keys.keyJSON(r.row)), Lines: [2]int64{k.prevLine, r.line}}
	}
	k.started = true
	k.prevKey = append(k.prevKey[:0], r.sortKey...)
	k.prevLine = r.line
	return r, nil
}

// merge walks both sorted streams together and writes each difference.
func merge(ctx context.Context, keys keyColumns, before, after stream, w *bufio.Writer, sum *Summary) error {
	a, err := before.next()
	if err != nil {
		return err
	}
	b, err := after.next()
	if err != nil {
		return err
	}
	var n int
	var line []byte
	for a != nil || b != nil {
		if n++; n&0xfff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var c int
		switch {
		case a == nil:
			c = 1
		case b == nil:
			c = -1
		default:
			c = compareKeys(a, b)
		}
		switch {
		case c < 0: // only before: deleted
			line = append(append(append(append(append(line[:0], `{"op":"delete","key":`...), keys.keyJSON(a.row)...), `,"before":`...), a.row...), "}\n"...)
			sum.Deleted++
			if _, err := w.Write(line); err != nil {
				return err
			}
			if a, err = before.next(); err != nil {
				return err
			}
		case c > 0: // only after: inserted
			line = append(append(append(append(append(line[:0], `{"op":"insert","key":`...), keys.keyJSON(b.row)...), `,"row":`...), b.row...), "}\n"...)
			sum.Inserted++
			if _, err := w.Write(line); err != nil {
				return err
			}
			if b, err = after.next(); err != nil {
				return err
			}
		default:
			changed, ok, err := changedFields(a.row, b.row)
			if err != nil {
				return err
			}
			if ok {
				line = append(append(append(append(append(line[:0], `{"op":"update","key":`...), keys.keyJSON(b.row)...), `,"row":`...), b.row...), `,"before":`...)
				line = append(append(line, changed...), "}\n"...)
				sum.Updated++
				if _, err := w.Write(line); err != nil {
					return err
				}
			} else {
				sum.Unchanged++
			}
			if a, err = before.next(); err != nil {
				return err
			}
			if b, err = after.next(); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyJSON is a row's key object, for a change line; the row was read
// with these keys once, so it has them.
func (k keyColumns) keyJSON(row []byte) []byte {
	_, j, err := k.keyOf(row, nil, nil, make([][]byte, len(k.names)))
	if err != nil {
		return []byte("null")
	}
	return j
}

// changedFields compares two rows with one key, field by field: it
// returns the fields whose value differs, as they were before (a field
// the row gained is null before), and whether any did. Rows whose fields
// come in another order are the same row.
func changedFields(before, after []byte) ([]byte, bool, error) {
	if bytes.Equal(before, after) {
		return nil, false, nil
	}
	var old []member
	if err := scanObject(before, func(m member) error { old = append(old, m); return nil }); err != nil {
		return nil, false, err
	}
	seen := make([]bool, len(old))
	out := []byte{'{'}
	add := func(name, value []byte) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, name...), ':'), value...)
	}
	err := scanObject(after, func(m member) error {
		for i, o := range old {
			if !seen[i] && sameName(o.name, m.name) {
				seen[i] = true
				if !sameValue(o.value, m.value) {
					add(o.name, o.value)
				}
				return nil
			}
		}
		add(m.name, []byte("null")) // a field the row did not have
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	for i, o := range old {
		if !seen[i] {
			add(o.name, o.value) // a field the row lost
		}
	}
	return append(out, '}'), len(out) > 1, nil
}

func sameName(a, b []byte) bool {
	return bytes.Equal(a, b) || ((bytes.IndexByte(a, '\\') >= 0 || bytes.IndexByte(b, '\\') >= 0) && nameText(a) == nameText(b))
}
