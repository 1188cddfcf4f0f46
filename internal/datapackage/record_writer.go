package datapackage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// outBufSize is the size of one output buffer handed to the writer goroutine.
const outBufSize = 256 << 10

// recordWriter frames records as a JSON array or NDJSON and hands full
// buffers to an asyncWriter, so the converter never waits for hashing,
// compression or the disk unless every buffer is in flight.
type recordWriter struct {
	out  []byte // the buffer being filled; converters append to it directly
	sink *asyncWriter
	ctx  context.Context
	// maxRecord and maxField bound one record and one field as converted
	// (convert.max_record_bytes, convert.max_field_bytes): converters check
	// them while a record grows, so hostile input cannot take the memory.
	maxRecord, maxField int
	// progress, when set, is told the record count at every flush.
	progress func(records int64)
	ndjson   bool
	records  int64
}

func newRecordWriter(ctx context.Context, sink *asyncWriter, format string) *recordWriter {
	rw := &recordWriter{ctx: ctx, sink: sink, ndjson: format == FormatNDJSON, out: sink.buffer(),
		maxRecord: defaultMaxRecordBytes, maxField: defaultMaxFieldBytes}
	if !rw.ndjson {
		rw.out = append(rw.out, '[')
	}
	return rw
}

// errRecordLimit marks the limits on one record or field: past them one
// entity fails, not the whole package (unlike the zip-bomb limits).
var errRecordLimit = errors.New("record limit")

// recordTooLong reports a record, starting on line, past maxRecord.
func (rw *recordWriter) recordTooLong(line int64) error {
	return rw.tooLong(line, fmt.Sprintf("the record starting on line %d", line))
}

// recordNumberTooLong reports record n (of a JSON array, where lines mean
// nothing) past maxRecord.
func (rw *recordWriter) recordNumberTooLong(n int64) error {
	return rw.tooLong(n, fmt.Sprintf("record %d", n))
}

func (rw *recordWriter) tooLong(line int64, what string) error {
	return &lineError{line: line, err: fmt.Errorf("%w: %w: %s is longer than convert.max_record_bytes (%d)",
		ErrLimitExceeded, errRecordLimit, what, rw.maxRecord)}
}

// fieldTooLong reports a field, starting on line, past maxField.
func (rw *recordWriter) fieldTooLong(line int64, what string) error {
	return &lineError{line: line, err: fmt.Errorf("%w: %w: the %s starting on line %d is longer than convert.max_field_bytes (%d)",
		ErrLimitExceeded, errRecordLimit, what, line, rw.maxField)}
}

// startRecord writes the separator before a record.
func (rw *recordWriter) startRecord() {
	if !rw.ndjson {
		if rw.records > 0 {
			rw.out = append(rw.out, ',', '\n')
		} else {
			rw.out = append(rw.out, '\n')
		}
	}
}

// endRecord counts a finished record and flushes a full buffer.
func (rw *recordWriter) endRecord() error {
	rw.records++
	if rw.ndjson {
		rw.out = append(rw.out, '\n')
	}
	if len(rw.out) >= outBufSize-outBufSize/8 {
		return rw.flush()
	}
	return nil
}

func (rw *recordWriter) flush() error {
	if len(rw.out) == 0 {
		return nil
	}
	if err := rw.ctx.Err(); err != nil {
		return err
	}
	if rw.progress != nil {
		rw.progress(rw.records)
	}
	if err := rw.sink.send(rw.out); err != nil {
		return err
	}
	rw.out = rw.sink.buffer()
	return nil
}

// finish closes the array and flushes everything.
func (rw *recordWriter) finish() error {
	if !rw.ndjson {
		if rw.records > 0 {
			rw.out = append(rw.out, '\n')
		}
		rw.out = append(rw.out, ']', '\n')
	}
	return rw.flush()
}

// asyncWriter writes buffers to w on its own goroutine, recycling them.
type asyncWriter struct {
	w    io.Writer
	full chan []byte
	free chan []byte
	done chan error
	err  error
}

// newAsyncWriter writes to w through buffers+1 buffers. sizeHint is the
// expected input size (negative: unknown): JSON output is a few times its
// input, so a small entity gets small buffers instead of a megabyte.
func newAsyncWriter(w io.Writer, buffers int, sizeHint int64) *asyncWriter {
	a := &asyncWriter{w: w, full: make(chan []byte, buffers), free: make(chan []byte, buffers+1), done: make(chan error, 1)}
	size := int64(outBufSize + outBufSize/4)
	if sizeHint >= 0 && sizeHint*4+4096 < size {
		size = sizeHint*4 + 4096
	}
	for range buffers + 1 {
		a.free <- make([]byte, 0, size)
	}
	go a.loop()
	return a
}

func (a *asyncWriter) loop() {
	var err error
	for b := range a.full {
		if err == nil {
			_, err = a.w.Write(b)
		}
		a.free <- b[:0]
	}
	a.done <- err
}

func (a *asyncWriter) buffer() []byte { return <-a.free }

var errWriterFailed = errors.New("output writer failed")

func (a *asyncWriter) send(b []byte) error {
	select {
	case err := <-a.done: // the writer stopped early
		a.err = err
		return err
	default:
	}
	a.full <- b
	return nil
}

// close waits for every buffer to be written and returns the first error.
func (a *asyncWriter) close() error {
	close(a.full)
	err := a.err
	if err == nil {
		err = <-a.done
	}
	return err
}

// appendJSONString appends s's content escaped for a JSON string (without
// the quotes); invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONString(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		i += plainPrefix(s[i:], quoteWord) // no delimiter inside a JSON string
		if i >= len(s) {
			break
		}
		b := s[i]
		if b >= utf8.RuneSelf {
			if _, size := utf8.DecodeRune(s[i:]); size > 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendEscape(dst, b)
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

const hexDigits = "0123456789abcdef"

func appendEscape(dst []byte, b byte) []byte {
	switch b {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	default:
		return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
	}
}
