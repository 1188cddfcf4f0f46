package finopssim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/klauspost/compress/zip"
)

// Namespace is the DataManagement XML namespace of Manifest.xml and
// PackageHeader.xml.
const Namespace = "http://schemas.microsoft.com/dynamics/2015/01/DataManagement"

// Entity is one entity file of a package, with the data it holds, so tests
// can compare converted output with what was put in.
type Entity struct {
	Name    string // DMF entity label, e.g. "Customer groups"
	File    string // InputFilePath, e.g. "Customer groups.csv"
	Format  string // SourceFormat as written in the manifest: "CSV", "XML-Element"
	Tag     string // record element name for XML formats
	Columns []string
	Rows    [][]string
}

// Package is a DMF data package: entity files plus Manifest.xml and
// PackageHeader.xml.
type Package struct {
	DefinitionGroup string
	Entities        []Entity
}

// SamplePackage builds a package shaped like a real FinOps export: two CSV
// entities (UTF-8 with BOM, CRLF, quoted fields holding commas, quotes and
// line breaks, non-ASCII text, empty fields) and one XML-Element entity.
// rows is the number of records per entity; seed makes it reproducible.
//
// Successive seeds (1, 2, 3, …: the simulator's package numbers) are
// successive snapshots of one table, as FinOps exports it: each holds the
// records seed…seed+rows-1, so the next drops the oldest record and adds
// one, and the record whose number is seed modulo rows has another
// description. A record's other values never change. Change events then
// have inserts, updates and deletes to report.
func SamplePackage(group string, rows int, seed uint64) Package {
	descs := []string{"Wholesale customers", "Retail, domestic", `Key accounts "gold"`, "Kunden – München",
		"Intercompany\r\nsecond line", "", "Ünïcødé grøup ✓", "Export; EU", "Tabs\there"}
	terms := []string{"Net30", "Net10", "COD", "", "Net45"}
	cg := Entity{Name: "Customer groups", File: "Customer groups.csv", Format: "CSV",
		Columns: []string{"CUSTOMERGROUPID", "DESCRIPTION", "PAYMENTTERMID", "ISSALESTAXINCLUDEDINPRICE", "CLEARINGPERIODPAYMENTTERMNAME"}}
	vg := Entity{Name: "Vendor groups", File: "Vendor groups.csv", Format: "CSV",
		Columns: []string{"VENDORGROUPID", "DESCRIPTION", "DEFAULTPAYMENTTERMNAME", "DEFAULTVENDORPAYMENTDAYNAME"}}
	cur := Entity{Name: "Currencies", File: "Currencies.xml", Format: "XML-Element", Tag: "CURRENCY",
		Columns: []string{"CURRENCYCODE", "NAME", "SYMBOL", "ROUNDINGPRECISION"}}
	currencies := [][]string{{"EUR", "Euro", "€", "0.01"}, {"USD", "US Dollar", "$", "0.01"}, {"JPY", "Yen", "¥", "1"},
		{"GBP", "Pound <sterling> & co", "£", "0.01"}, {"DKK", "Dansk krone", "kr.", "0.01"}}
	first := max(int(seed), 1)
	for id := first; id < first+rows; id++ {
		// A record's values come from its number alone, so they stay the
		// same from one snapshot to the next.
		r := rand.New(rand.NewPCG(uint64(id), 0x9e3779b97f4a7c15))
		cgDesc, vgDesc := r.IntN(len(descs)), r.IntN(len(descs))
		if id%rows == int(seed)%rows {
			cgDesc, vgDesc = (cgDesc+1+int(seed))%len(descs), (vgDesc+1+int(seed))%len(descs) // changed in this snapshot
		}
		cg.Rows = append(cg.Rows, []string{fmt.Sprintf("CG%04d", id), descs[cgDesc],
			terms[r.IntN(len(terms))], []string{"Yes", "No"}[r.IntN(2)], ""})
		vg.Rows = append(vg.Rows, []string{fmt.Sprintf("VG%04d", id), descs[vgDesc],
			terms[r.IntN(len(terms))], []string{"Monday", "", "Friday"}[r.IntN(3)]})
		c := currencies[id%len(currencies)]
		cur.Rows = append(cur.Rows, []string{fmt.Sprintf("%s%d", c[0], id/len(currencies)), c[1], c[2], c[3]})
	}
	return Package{DefinitionGroup: group, Entities: []Entity{cg, vg, cur}}
}

// Zip renders the package as a DMF zip.
func (p Package) Zip() []byte {
	var files []ZipEntry
	for _, e := range p.Entities {
		files = append(files, ZipEntry{Name: e.File, Data: e.Render()})
	}
	meta := p.MetadataFiles()
	for _, name := range []string{"Manifest.xml", "PackageHeader.xml"} {
		files = append(files, ZipEntry{Name: name, Data: meta[name]})
	}
	return Zip(files...)
}

// ZipEntry is one file of a zip built by Zip.
type ZipEntry struct {
	Name string // written as given: tests use it for hostile names too
	Data []byte
}

// ZipMap builds a zip of files (name → contents) in name order, so the same
// map always gives the same bytes.
func ZipMap(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	entries := make([]ZipEntry, len(names))
	for i, n := range names {
		entries[i] = ZipEntry{Name: n, Data: files[n]}
	}
	return Zip(entries...)
}

// Zip builds a zip of files, in order, deflated, with a fixed timestamp so
// the same files always give the same bytes.
func Zip(files ...ZipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: packageTime})
		if err != nil {
			panic(err)
		}
		if _, err := w.Write(f.Data); err != nil {
			panic(err)
		}
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// MetadataFiles returns Manifest.xml and PackageHeader.xml as FinOps writes
// them: UTF-16 LE with a byte-order mark.
func (p Package) MetadataFiles() map[string][]byte {
	return map[string][]byte{"Manifest.xml": UTF16LE(p.manifest()), "PackageHeader.xml": UTF16LE(p.header())}
}

// Render returns the entity file's bytes in its format.
func (e Entity) Render() []byte {
	var b strings.Builder
	switch e.Format {
	case "XML-Element":
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\r\n<Document>\r\n")
		for _, row := range e.Rows {
			b.WriteString("  <" + e.Tag + ">")
			for i, col := range e.Columns {
				b.WriteString("<" + col + ">" + xmlEscape(row[i]) + "</" + col + ">")
			}
			b.WriteString("</" + e.Tag + ">\r\n")
		}
		b.WriteString("</Document>\r\n")
		return []byte(b.String())
	default: // CSV: UTF-8 with BOM, CRLF, fields quoted when needed
		b.WriteString("\uFEFF")
		writeCSVRow(&b, e.Columns)
		for _, row := range e.Rows {
			writeCSVRow(&b, row)
		}
		return []byte(b.String())
	}
}

func writeCSVRow(b *strings.Builder, fields []string) {
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.ContainsAny(f, ",\"\r\n") {
			b.WriteString(`"` + strings.ReplaceAll(f, `"`, `""`) + `"`)
		} else {
			b.WriteString(f)
		}
	}
	b.WriteString("\r\n")
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\r", "&#xD;").Replace(s)
}

func (p Package) manifest() string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-16"?><DataManagementPackageManifest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="` + Namespace + `">`)
	b.WriteString("<DefinitionGroupName>" + xmlEscape(p.DefinitionGroup) + "</DefinitionGroupName><Description>" + xmlEscape(p.DefinitionGroup) + "</Description><PackageEntityList>")
	for i, e := range p.Entities {
		b.WriteString("<DataManagementPackageEntityData><EntityMapList>")
		for j, c := range e.Columns {
			fmt.Fprintf(&b, `<EntityMap><ArrayIndex>%d</ArrayIndex><EntityField>%s</EntityField><EntityFieldConversionList i:nil="true"/><IsAutoDefault>false</IsAutoDefault><IsAutoGenerated>false</IsAutoGenerated><IsDefaultValueEqualNull>false</IsDefaultValueEqualNull><UseTextQualifier>false</UseTextQualifier><XMLField>%s</XMLField></EntityMap>`, j, c, c)
		}
		fmt.Fprintf(&b, `</EntityMapList><EntityName>%s</EntityName><EntityTransformList i:nil="true"/><ExcelSheetName/><ExecutionUnit>1</ExecutionUnit><FailExecutionUnitOnError>false</FailExecutionUnitOnError><FailLevelOnError>false</FailLevelOnError><InputFilePath>%s</InputFilePath><LevelInExecutionUnit>1</LevelInExecutionUnit><RunBusinessLogic>true</RunBusinessLogic><RunBusinessValidation>true</RunBusinessValidation><SampleFilePath/><SequenceInLevel>%d</SequenceInLevel><SourceFormat>%s</SourceFormat><ValidationStatus>Yes</ValidationStatus></DataManagementPackageEntityData>`,
			xmlEscape(e.Name), xmlEscape(e.File), i+1, e.Format)
	}
	b.WriteString("</PackageEntityList></DataManagementPackageManifest>")
	return b.String()
}

func (p Package) header() string {
	return `<DataManagementPackageHeader xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="` + Namespace + `"><Description>` +
		xmlEscape(p.DefinitionGroup) + `</Description><ManifestType>Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest</ManifestType><PackageType>DefinitionGroup</PackageType><PackageVersion>2</PackageVersion></DataManagementPackageHeader>`
}

var packageTime = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

// UTF16LE encodes s as UTF-16 little-endian with a byte-order mark, as
// FinOps writes Manifest.xml and PackageHeader.xml.
func UTF16LE(s string) []byte {
	units := utf16.Encode([]rune(s))
	out := make([]byte, 2+2*len(units))
	out[0], out[1] = 0xFF, 0xFE
	for i, u := range units {
		binary.LittleEndian.PutUint16(out[2+2*i:], u)
	}
	return out
}
