package datapackage

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// convertXML converts DMF XML exports: records are the children of the root
// element (<Document>); a record's fields are its attributes (XML-Attribute)
// and its child elements' text (XML-Element), in document order.
//
// A record's input is bounded by max_record_bytes through a recordGuard (the
// decoder holds a whole text node in memory before returning it) and a
// field's text by max_field_bytes; errors name the line where the record or
// field started.
func convertXML(r io.Reader, rw *recordWriter) error {
	guard := newRecordGuard(r, rw.maxRecord)
	d := xml.NewDecoder(guard)
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil } // already UTF-8
	lineErr := func(err error) error {
		line, _ := d.InputPos()
		return &lineError{line: int64(line), err: err}
	}
	depth := 0
	var text []byte
	var field string
	var recordLine, fieldLine int64
	recordStart := 0
	fields := 0
	var names *fieldKeys
	writeField := func(name string, value []byte) error {
		if len(value) > rw.maxField {
			return rw.fieldTooLong(fieldLine, "field <"+name+">")
		}
		rw.out = appendKey(rw.out, fields == 0, names.unique(fields, name))
		rw.out = appendJSONString(rw.out, value)
		rw.out = append(rw.out, '"')
		fields++
		if len(rw.out)-recordStart > rw.maxRecord {
			return rw.recordTooLong(recordLine)
		}
		return nil
	}
	sawRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, errGuardTripped) {
			if depth < 2 { // between records: one huge token outside any record
				line, _ := d.InputPos()
				return rw.recordTooLong(int64(line))
			}
			return rw.recordTooLong(recordLine)
		}
		if err == io.EOF {
			if !sawRoot {
				return lineErr(errors.New("no root element"))
			}
			if depth != 0 {
				return lineErr(errors.New("unexpected end of document"))
			}
			return nil
		}
		if err != nil {
			return lineErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if sawRoot {
					return lineErr(errors.New("more than one root element"))
				}
				sawRoot = true
			case 2:
				fields, names = 0, newFieldKeys()
				line, _ := d.InputPos()
				recordLine, fieldLine = int64(line), int64(line)
				rw.startRecord()
				recordStart = len(rw.out)
				for _, a := range t.Attr {
					if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" || a.Name.Space == "http://www.w3.org/2001/XMLSchema-instance" {
						continue
					}
					if err := writeField(a.Name.Local, []byte(a.Value)); err != nil {
						return err
					}
				}
			case 3:
				line, _ := d.InputPos()
				field, text, fieldLine = t.Name.Local, text[:0], int64(line)
			default:
				return lineErr(fmt.Errorf("element <%s> is nested deeper than a field", t.Name.Local))
			}
		case xml.CharData:
			if depth == 3 {
				if len(text)+len(t) > rw.maxField {
					return rw.fieldTooLong(fieldLine, "field <"+field+">")
				}
				text = append(text, t...)
			}
		case xml.EndElement:
			switch depth {
			case 3:
				if err := writeField(field, text); err != nil {
					return err
				}
			case 2:
				if fields == 0 {
					rw.out = append(rw.out, '{')
				}
				rw.out = append(rw.out, '}')
				if err := rw.endRecord(); err != nil {
					return err
				}
				guard.mark()
			}
			depth--
		}
	}
}

// xmlStyle says whether an XML file holds its fields as attributes; used
// only to report the derived SourceFormat when there is no manifest.
func xmlStyle(head []byte) string {
	s := string(head)
	if i := strings.Index(s, "<Document"); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '<'); j >= 0 {
			rec := s[j:]
			if end := strings.IndexAny(rec, "/>"); end > 0 && strings.Contains(rec[:end], "=") {
				return "XML-Attribute"
			}
		}
	}
	return "XML-Element"
}
