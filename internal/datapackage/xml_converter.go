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
func convertXML(r io.Reader, rw *recordWriter) error {
	d := xml.NewDecoder(r)
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil } // already UTF-8
	lineErr := func(err error) error {
		line, _ := d.InputPos()
		return &lineError{line: int64(line), err: err}
	}
	depth := 0
	var text []byte
	var field string
	inRecord := false
	fields := 0
	var names *fieldKeys
	writeField := func(name string, value []byte) {
		rw.out = appendKey(rw.out, fields == 0, names.unique(fields, name))
		rw.out = appendJSONString(rw.out, value)
		rw.out = append(rw.out, '"')
		fields++
	}
	sawRoot := false
	for {
		tok, err := d.Token()
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
				inRecord, fields, names = true, 0, newFieldKeys()
				rw.startRecord()
				for _, a := range t.Attr {
					if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" || a.Name.Space == "http://www.w3.org/2001/XMLSchema-instance" {
						continue
					}
					writeField(a.Name.Local, []byte(a.Value))
				}
			case 3:
				field, text = t.Name.Local, text[:0]
			default:
				return lineErr(fmt.Errorf("element <%s> is nested deeper than a field", t.Name.Local))
			}
		case xml.CharData:
			if depth == 3 {
				text = append(text, t...)
			}
		case xml.EndElement:
			switch depth {
			case 3:
				writeField(field, text)
			case 2:
				if fields == 0 {
					rw.out = append(rw.out, '{')
				}
				rw.out = append(rw.out, '}')
				inRecord = false
				if err := rw.endRecord(); err != nil {
					return err
				}
			}
			depth--
		}
		_ = inRecord
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
