package datapackage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// CSV parse errors; the messages follow encoding/csv's.
var (
	errBareQuote  = errors.New(`bare " in non-quoted field`)
	errQuote      = errors.New(`extraneous or missing " in quoted field`)
	errFieldCount = errors.New("wrong number of fields")
	errNoHeader   = errors.New("no header row")
)

// csvConverter converts delimited text to JSON records keyed by the header
// row. Its semantics follow encoding/csv with FieldsPerRecord = 0 (every
// record has the header's field count), LazyQuotes = false: "\r\n" line ends
// read as "\n" (also inside quoted fields), empty lines are skipped, a quote
// inside an unquoted field is an error.
type csvConverter struct {
	delim byte
	r     *bufio.Reader
	rw    *recordWriter
	line  int64 // physical line of the last line read

	class     [256]uint8 // non-zero: byte needs attention inside an unquoted field
	delimWord uint64     // the delimiter in every byte, for plainPrefix
	keys      [][]byte   // per column: `{"KEY":"` or `,"KEY":"`
	marks     []int      // while reading the header: where each field starts
	long      []byte     // reused for lines longer than the reader's buffer
}

const (
	clsEscape = 1 // needs JSON escaping (control, backslash)
	clsDelim  = 2
	clsQuote  = 3
	clsUTF8   = 4 // start of a multi-byte sequence: validated inline
)

func newCSVConverter(r io.Reader, delim byte, rw *recordWriter) *csvConverter {
	c := &csvConverter{delim: delim, delimWord: wordOf(delim), r: bufio.NewReaderSize(r, 256<<10), rw: rw}
	for b := 0; b < 0x20; b++ {
		c.class[b] = clsEscape
	}
	c.class['\\'] = clsEscape
	for b := 0x80; b < 0x100; b++ {
		c.class[b] = clsUTF8
	}
	c.class['"'] = clsQuote
	c.class[delim] = clsDelim
	return c
}

// errLineTooLong: a physical line is longer than max_record_bytes; the
// caller reports it at the line where its record started.
var errLineTooLong = errors.New("line longer than max_record_bytes")

// readLine returns the next physical line with "\r\n" normalised to "\n"
// (and a final "\r" before EOF dropped), or io.EOF. The slice is valid until
// the next call. A line longer than max_record_bytes is not held in memory:
// errLineTooLong.
func (c *csvConverter) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append(c.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > c.rw.maxRecord {
				return nil, errLineTooLong
			}
			line, err = c.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line, c.long = buf, buf
	}
	if len(line) > 0 && err == io.EOF {
		err = nil
		if line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
	}
	if err != nil {
		return nil, err
	}
	c.line++
	if n := len(line); n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		line[n-2] = '\n'
		line = line[:n-1]
	}
	return line, nil
}

// nextLine returns the next non-empty line, or io.EOF.
func (c *csvConverter) nextLine() ([]byte, error) {
	for {
		line, err := c.readLine()
		if errors.Is(err, errLineTooLong) {
			return nil, c.rw.recordTooLong(c.line + 1)
		}
		if err != nil {
			return nil, err
		}
		if len(line) == 0 || len(line) == 1 && line[0] == '\n' {
			continue // encoding/csv skips empty lines (a lone "\r" before EOF is one)
		}
		return line, nil
	}
}

// parseRecord parses one record starting at line, appending each field to
// c.rw.out behind keyFor(i), and returns the field count. It reads further
// lines while a quoted field spans them.
//
// The record is bounded by max_record_bytes and each field by
// max_field_bytes as they grow; an error names the line where the record,
// or the quoted field, started.
func (c *csvConverter) parseRecord(line []byte, keys [][]byte) (int, error) {
	out := c.rw.out
	defer func() { c.rw.out = out }()
	recordLine, recordStart := c.line, len(out)
	field := 0
	pos := 0
	for {
		if field < len(keys) {
			out = append(out, keys[field]...)
		}
		if c.marks != nil {
			c.marks = append(c.marks, len(out))
		}
		fieldStart := len(out)
		if pos < len(line) && line[pos] == '"' {
			// Quoted field.
			quoteLine := c.line
			pos++
			for {
				i := bytes.IndexByte(line[pos:], '"')
				if i < 0 {
					// The field goes on past this line.
					out = appendJSONString(out, line[pos:])
					if len(out)-fieldStart > c.rw.maxField {
						return field + 1, c.rw.fieldTooLong(quoteLine, "quoted field")
					}
					if len(out)-recordStart > c.rw.maxRecord {
						// Name the quote too: an open one is the usual cause.
						return field + 1, &lineError{line: recordLine, err: fmt.Errorf("%w: %w: the record starting on line %d, in the quoted field opened on line %d, is longer than convert.max_record_bytes (%d); is a quote left open?",
							ErrLimitExceeded, errRecordLimit, recordLine, quoteLine, c.rw.maxRecord)}
					}
					if len(line) == 0 || line[len(line)-1] != '\n' {
						return field + 1, &lineError{line: quoteLine, err: fmt.Errorf("%w: the quote opened on line %d is never closed", errQuote, quoteLine)}
					}
					next, err := c.readLine()
					switch {
					case err == io.EOF:
						return field + 1, &lineError{line: quoteLine, err: fmt.Errorf("%w: the quote opened on line %d is never closed", errQuote, quoteLine)}
					case errors.Is(err, errLineTooLong):
						return field + 1, c.rw.recordTooLong(recordLine)
					case err != nil:
						return field + 1, err
					}
					line, pos = next, 0
					continue
				}
				out = appendJSONString(out, line[pos:pos+i])
				pos += i + 1
				if pos < len(line) && line[pos] == '"' {
					out = append(out, '\\', '"')
					pos++
					continue
				}
				break
			}
			out = append(out, '"')
			field++
			switch {
			case pos < len(line) && line[pos] == c.delim:
				pos++
				continue
			case pos >= len(line) || line[pos] == '\n':
				return field, nil
			default:
				return field, &lineError{line: c.line, err: errQuote}
			}
		}
		// Unquoted field: copy runs of plain bytes, stop at the delimiter or
		// the line end.
		start := pos
	scan:
		for {
			pos += plainPrefix(line[pos:], c.delimWord)
			if pos >= len(line) {
				break
			}
			b := line[pos]
			switch c.class[b] {
			case clsDelim:
				break scan
			case clsQuote:
				return field + 1, &lineError{line: c.line, err: errBareQuote}
			case clsUTF8:
				if _, size := utf8.DecodeRune(line[pos:]); size > 1 {
					pos += size
					continue
				}
				out = append(out, line[start:pos]...)
				out = append(out, "\\ufffd"...) // invalid UTF-8, as encoding/json does
				pos++
				start = pos
			default:
				if b == '\n' && pos == len(line)-1 {
					break scan
				}
				out = append(out, line[start:pos]...)
				out = appendEscape(out, b)
				pos++
				start = pos
			}
		}
		out = append(out, line[start:pos]...)
		if len(out)-fieldStart > c.rw.maxField {
			return field + 1, c.rw.fieldTooLong(c.line, "field")
		}
		out = append(out, '"')
		field++
		if len(out)-recordStart > c.rw.maxRecord {
			return field, c.rw.recordTooLong(recordLine)
		}
		if pos < len(line) && line[pos] == c.delim {
			pos++
			continue
		}
		return field, nil
	}
}

// readHeader parses the first non-empty record into column keys.
func (c *csvConverter) readHeader() error {
	line, err := c.nextLine()
	if err == io.EOF {
		return &lineError{line: c.line + 1, err: errNoHeader}
	}
	if err != nil {
		return err
	}
	saved := c.rw.out
	c.rw.out = nil
	c.marks = []int{}
	n, err := c.parseRecord(line, nil)
	raw, bounds := c.rw.out, append(c.marks, len(c.rw.out))
	c.rw.out, c.marks = saved, nil
	if err != nil {
		return err
	}
	// The header's raw bytes are already JSON-escaped; keys are built from
	// the decoded text so escaping happens once, in appendKey.
	names := newFieldKeys()
	for i := 0; i < n; i++ {
		var name string
		if err := json.Unmarshal(append(append([]byte{'"'}, raw[bounds[i]:bounds[i+1]-1]...), '"'), &name); err != nil {
			return &lineError{line: c.line, err: fmt.Errorf("header field %d: %w", i+1, err)}
		}
		c.keys = append(c.keys, appendKey(nil, i == 0, names.unique(i, name)))
	}
	return nil
}

// convert writes every record; the header must have been read.
func (c *csvConverter) convert() error {
	cols := len(c.keys)
	for {
		line, err := c.nextLine()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		start := c.line
		mark := len(c.rw.out)
		c.rw.startRecord()
		n, err := c.parseRecord(line, c.keys)
		if err != nil {
			return err
		}
		if n != cols {
			c.rw.out = c.rw.out[:mark]
			return &lineError{line: start, err: fmt.Errorf("%w: record has %d fields, the header has %d", errFieldCount, n, cols)}
		}
		c.rw.out = append(c.rw.out, '}')
		if err := c.rw.endRecord(); err != nil {
			return err
		}
	}
}

// sniffDelimiter picks the delimiter that occurs most often outside quotes
// in the first line, among the five DMF supports; comma wins ties.
func sniffDelimiter(head []byte) byte {
	counts := map[byte]int{}
	inQuote := false
	for _, b := range head {
		if b == '"' {
			inQuote = !inQuote
			continue
		}
		if inQuote {
			continue
		}
		if b == '\n' {
			break
		}
		switch b {
		case ',', ';', '\t', '|', ':':
			counts[b]++
		}
	}
	best, bestN := byte(','), counts[',']
	for _, d := range []byte{'\t', ';', '|', ':'} {
		if counts[d] > bestN {
			best, bestN = d, counts[d]
		}
	}
	return best
}
