package change

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// record is one row in sort order: the hash of its sort key, the sort
// key, the row as written and its line in the snapshot.
type record struct {
	hash         uint64
	sortKey, row []byte
	line         int64
}

// compare orders records by the hash of their key, then by key, then by
// line (two rows with one key come out in file order). Any total order
// serves the merge, as long as both snapshots are sorted by it; the hash
// first makes most comparisons one of two integers.
func compare(a, b *record) int {
	if c := compareKeys(a, b); c != 0 {
		return c
	}
	switch {
	case a.line < b.line:
		return -1
	case a.line > b.line:
		return 1
	}
	return 0
}

// compareKeys orders two records by key alone: the sort order without
// the line (the merge's).
func compareKeys(a, b *record) int {
	switch {
	case a.hash < b.hash:
		return -1
	case a.hash > b.hash:
		return 1
	}
	return bytes.Compare(a.sortKey, b.sortKey)
}

// hashKey is FNV-1a: fixed, so the order is the same in every run.
func hashKey(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// entry is a record held in the sorter's arena; 32 bytes, so sorting
// moves little.
type entry struct {
	hash       uint64
	off        uint32
	klen, rlen uint32
	line       int64
}

// sorter sorts records in memory up to a budget, spilling each full chunk
// sorted to a file under dir; reading merges the chunks. Memory stays
// near the budget whatever the snapshot's size.
type sorter struct {
	dir    string
	budget int
	arena  []byte // the keys and rows of the chunk's entries
	ents   []entry
	chunks []*os.File
	w      *bufio.Writer // reused by every spill
}

func newSorter(dir string, budget int) *sorter {
	return &sorter{dir: dir, budget: budget}
}

func (s *sorter) record(e *entry, r *record) {
	k := s.arena[e.off : e.off+e.klen : e.off+e.klen]
	row := s.arena[e.off+e.klen : e.off+e.klen+e.rlen : e.off+e.klen+e.rlen]
	*r = record{hash: e.hash, sortKey: k, row: row, line: e.line}
}

// add copies r into the current chunk, spilling it first when full.
func (s *sorter) add(r record) error {
	n := len(r.sortKey) + len(r.row)
	if len(s.arena)+n+len(s.ents)*32 > s.budget && len(s.ents) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	// The arena grows as appends do (small snapshots stay small) and is
	// reused after each spill.
	s.arena = slices.Grow(s.arena, n)
	off := uint32(len(s.arena))
	s.arena = append(append(s.arena, r.sortKey...), r.row...)
	s.ents = append(s.ents, entry{hash: hashKey(r.sortKey), off: off, klen: uint32(len(r.sortKey)), rlen: uint32(len(r.row)), line: r.line})
	return nil
}

func (s *sorter) sortEntries() {
	var a, b record
	slices.SortFunc(s.ents, func(x, y entry) int {
		switch {
		case x.hash < y.hash:
			return -1
		case x.hash > y.hash:
			return 1
		}
		s.record(&x, &a)
		s.record(&y, &b)
		return compare(&a, &b)
	})
}

// spill writes the chunk, sorted, to a file.
func (s *sorter) spill() error {
	s.sortEntries()
	f, err := os.CreateTemp(s.dir, "change-chunk-*")
	if err != nil {
		return fmt.Errorf("sorting a snapshot: %w", err)
	}
	s.chunks = append(s.chunks, f)
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, 256<<10)
	}
	w := s.w
	w.Reset(f)
	var hdr [8 + 3*binary.MaxVarintLen64]byte
	for i := range s.ents {
		e := &s.ents[i]
		h := binary.LittleEndian.AppendUint64(hdr[:0], e.hash)
		h = binary.AppendUvarint(h, uint64(e.klen))
		h = binary.AppendUvarint(h, uint64(e.rlen))
		h = binary.AppendVarint(h, e.line)
		w.Write(h)
		if _, err := w.Write(s.arena[e.off : e.off+e.klen+e.rlen]); err != nil {
			return fmt.Errorf("sorting a snapshot: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sorting a snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s.ents, s.arena = s.ents[:0], s.arena[:0]
	return nil
}

// close removes the chunk files.
func (s *sorter) close() {
	for _, f := range s.chunks {
		f.Close()
		os.Remove(f.Name())
	}
	s.chunks = nil
}

// stream is records in sort order.
type stream interface {
	// next returns the next record, valid until the following call; nil at
	// the end.
	next() (*record, error)
}

// sorted returns the records in order: from memory when nothing was
// spilled, else merged from the chunks (the last one spilled too).
func (s *sorter) sorted() (stream, error) {
	if len(s.chunks) == 0 {
		s.sortEntries()
		return &memStream{s: s}, nil
	}
	if len(s.ents) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	s.arena, s.ents, s.w = nil, nil, nil // the chunks hold everything now
	m := &mergeStream{}
	for _, f := range s.chunks {
		c := &chunkReader{r: bufio.NewReaderSize(f, 32<<10)}
		ok, err := c.read()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h = append(m.h, c)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

type memStream struct {
	s   *sorter
	i   int
	cur record
}

func (m *memStream) next() (*record, error) {
	if m.i >= len(m.s.ents) {
		return nil, nil
	}
	m.s.record(&m.s.ents[m.i], &m.cur)
	m.i++
	return &m.cur, nil
}

// chunkReader reads one spilled chunk; cur is its current record.
type chunkReader struct {
	r    *bufio.Reader
	buf  []byte
	hash [8]byte
	cur  record
}

var errChunk = errors.New("a sorted chunk is damaged")

func (c *chunkReader) read() (bool, error) {
	if _, err := io.ReadFull(c.r, c.hash[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("%w: %w", errChunk, err)
	}
	kl, err1 := binary.ReadUvarint(c.r)
	rl, err2 := binary.ReadUvarint(c.r)
	line, err3 := binary.ReadVarint(c.r)
	if err := errors.Join(err1, err2, err3); err != nil {
		return false, fmt.Errorf("%w: %w", errChunk, err)
	}
	n := int(kl + rl)
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return false, fmt.Errorf("%w: %w", errChunk, err)
	}
	k := int(kl)
	c.cur = record{hash: binary.LittleEndian.Uint64(c.hash[:]), sortKey: c.buf[:k:k], row: c.buf[k:n:n], line: line}
	return true, nil
}

type chunkHeap []*chunkReader

func (h chunkHeap) Len() int           { return len(h) }
func (h chunkHeap) Less(i, j int) bool { return compare(&h[i].cur, &h[j].cur) < 0 }
func (h chunkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *chunkHeap) Push(x any)        { *h = append(*h, x.(*chunkReader)) }
func (h *chunkHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeStream merges sorted chunks. The record it returns lives in its
// chunk's buffer, which the chunk's next read reuses: so the chunk is
// advanced at the following call, not before.
type mergeStream struct {
	h    chunkHeap
	last *chunkReader
}

func (m *mergeStream) next() (*record, error) {
	if m.last != nil {
		ok, err := m.last.read()
		if err != nil {
			return nil, err
		}
		if ok {
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
		m.last = nil
	}
	if len(m.h) == 0 {
		return nil, nil
	}
	m.last = m.h[0]
	return &m.h[0].cur, nil
}
