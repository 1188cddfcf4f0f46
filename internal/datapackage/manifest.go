package datapackage

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Namespace is the DataManagement namespace of Manifest.xml and PackageHeader.xml.
const Namespace = "http://schemas.microsoft.com/dynamics/2015/01/DataManagement"

// ManifestEntity is one PackageEntityList entry.
type ManifestEntity struct {
	EntityName     string `xml:"EntityName"`
	InputFilePath  string `xml:"InputFilePath"`
	SourceFormat   string `xml:"SourceFormat"`
	ExcelSheetName string `xml:"ExcelSheetName"`
}

// Manifest is Manifest.xml.
type Manifest struct {
	XMLName             xml.Name         `xml:"DataManagementPackageManifest"`
	DefinitionGroupName string           `xml:"DefinitionGroupName"`
	Description         string           `xml:"Description"`
	Entities            []ManifestEntity `xml:"PackageEntityList>DataManagementPackageEntityData"`
}

// Header is PackageHeader.xml.
type Header struct {
	XMLName        xml.Name `xml:"DataManagementPackageHeader"`
	Description    string   `xml:"Description"`
	PackageType    string   `xml:"PackageType"`
	PackageVersion string   `xml:"PackageVersion"`
}

// ParseManifest parses Manifest.xml in UTF-16 LE/BE (with BOM) or UTF-8
// (with or without BOM), in the DataManagement namespace.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeXMLDoc(data, &m); err != nil {
		return nil, err
	}
	if m.XMLName.Space != Namespace {
		return nil, fmt.Errorf("root element is not in the DataManagement namespace (got %q)", m.XMLName.Space)
	}
	for i, e := range m.Entities {
		if strings.TrimSpace(e.InputFilePath) == "" || strings.TrimSpace(e.EntityName) == "" {
			return nil, fmt.Errorf("entity %d of PackageEntityList lacks EntityName or InputFilePath", i+1)
		}
	}
	return &m, nil
}

// ParseHeader parses PackageHeader.xml.
func ParseHeader(data []byte) (*Header, error) {
	var h Header
	if err := decodeXMLDoc(data, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// decodeXMLDoc decodes a small XML document after normalising its encoding
// to UTF-8 by BOM; the XML declaration's encoding attribute (often "utf-16")
// is then ignored, since the bytes are already UTF-8.
func decodeXMLDoc(data []byte, v any) error {
	utf8Data, err := toUTF8(data)
	if err != nil {
		return err
	}
	if err := checkDepth(utf8Data); err != nil {
		return err
	}
	d := xml.NewDecoder(bytes.NewReader(utf8Data))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := d.Decode(v); err != nil {
		line, _ := d.InputPos()
		return &lineError{line: int64(line), err: err}
	}
	return nil
}

// maxMetadataDepth bounds element nesting in Manifest.xml and
// PackageHeader.xml (real ones nest 4 deep): decoding millions of nested
// elements into a struct takes memory in proportion.
const maxMetadataDepth = 32

// checkDepth refuses a document nested deeper than maxMetadataDepth, in one
// cheap pass before the real decode.
func checkDepth(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // the real decode reports it, with its line
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth++; depth > maxMetadataDepth {
				line, _ := d.InputPos()
				return &lineError{line: int64(line), err: fmt.Errorf("%w: elements nested deeper than %d", ErrLimitExceeded, maxMetadataDepth)}
			}
		case xml.EndElement:
			depth--
		}
	}
}

// toUTF8 converts a whole small document to UTF-8 by its BOM.
func toUTF8(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:], nil
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}), bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		out, _, err := transform.Bytes(unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder(), data)
		if err != nil {
			return nil, fmt.Errorf("invalid UTF-16: %w", err)
		}
		return out, nil
	case len(data) >= 2 && data[0] == '<' && data[1] == 0:
		// UTF-16 LE without BOM.
		out, _, err := transform.Bytes(unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder(), data)
		return out, err
	default:
		return data, nil
	}
}
