package datapackage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// convertJSON validates a JSON array of objects, or NDJSON (one object per
// line), and re-emits the objects compacted in the chosen output form.
func convertJSON(r io.Reader, rw *recordWriter) error {
	br := bufio.NewReaderSize(r, 256<<10)
	first, err := peekNonSpace(br)
	if err != nil {
		return &lineError{line: 1, err: errors.New("empty JSON file")}
	}
	if first == '[' {
		return convertJSONArray(br, rw)
	}
	return convertNDJSON(br, rw)
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xEF: // UTF-8 BOM
			_, _ = br.Discard(2)
			continue
		}
		return b, br.UnreadByte()
	}
}

// convertJSONArray re-emits each object of the array. The decoder holds a
// whole value before returning it, so its input is bounded per record by a
// recordGuard. Positions are record numbers: a JSON array has no lines that
// mean anything.
func convertJSONArray(br *bufio.Reader, rw *recordWriter) error {
	guard := newRecordGuard(br, rw.maxRecord)
	d := json.NewDecoder(guard)
	if _, err := d.Token(); err != nil {
		return &lineError{line: 1, err: err}
	}
	for n := int64(1); d.More(); n++ {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			if errors.Is(err, errGuardTripped) {
				return rw.recordNumberTooLong(n)
			}
			return &lineError{line: n, err: fmt.Errorf("record %d: %w", n, err)}
		}
		if len(raw) > rw.maxRecord {
			return rw.recordNumberTooLong(n)
		}
		guard.mark()
		if err := writeObject(rw, raw, n); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil {
		return &lineError{line: rw.records + 1, err: fmt.Errorf("after record %d: %w", rw.records, err)}
	}
	if _, err := d.Token(); err != io.EOF {
		return &lineError{line: rw.records + 1, err: errors.New("data after the closing ]")}
	}
	return nil
}

func convertNDJSON(br *bufio.Reader, rw *recordWriter) error {
	var line int64
	var long []byte
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > rw.maxRecord {
					return rw.recordTooLong(line + 1)
				}
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if len(b) > rw.maxRecord {
			return rw.recordTooLong(line + 1)
		}
		if len(b) > 0 {
			line++
			if t := bytes.TrimSpace(b); len(t) > 0 {
				if err := writeObject(rw, t, line); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func writeObject(rw *recordWriter, raw []byte, line int64) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return &lineError{line: line, err: errors.New("not a JSON object")}
	}
	rw.startRecord()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return &lineError{line: line, err: err}
	}
	rw.out = append(rw.out, buf.Bytes()...)
	return rw.endRecord()
}
