package datapackage

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zip"
	"github.com/xuri/excelize/v2"
)

// xlsxInMemory is the largest workbook part excelize keeps in memory; larger
// sheets are read from a temporary file under work_dir.
const xlsxInMemory = 4 << 20

// convertXLSX converts the sheet (the manifest's ExcelSheetName, else the
// first) of an .xlsx file at path: the first row gives the keys, cells are
// read raw (no number formatting), streamed row by row.
//
// A workbook is a zip inside the zip: its parts get the package's limits
// (entries, sizes, ratio) and its shared string table, which is held in
// memory, its own (max_shared_strings, max_shared_strings_bytes) before
// excelize opens it.
func convertXLSX(path, sheet string, o Options, rw *recordWriter) error {
	if err := checkWorkbook(path, o); err != nil {
		return err
	}
	f, err := excelize.OpenFile(path, excelize.Options{RawCellValue: true, TmpDir: o.WorkDir,
		UnzipSizeLimit: max(o.MaxTotalBytes, xlsxInMemory), UnzipXMLSizeLimit: xlsxInMemory})
	if err != nil {
		return &lineError{line: 0, err: fmt.Errorf("not a readable .xlsx workbook: %w", err)}
	}
	defer f.Close()
	if sheet == "" {
		sheets := f.GetSheetList()
		if len(sheets) == 0 {
			return errors.New("workbook has no sheets")
		}
		sheet = sheets[0]
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		return fmt.Errorf("sheet %q: %w", sheet, err)
	}
	defer rows.Close()
	var keys [][]byte
	var line int64
	for rows.Next() {
		line++
		cols, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return &lineError{line: line, err: err}
		}
		if keys == nil {
			if len(cols) == 0 {
				continue
			}
			names := newFieldKeys()
			for i, c := range cols {
				keys = append(keys, appendKey(nil, i == 0, names.unique(i, c)))
			}
			continue
		}
		if len(cols) == 0 {
			continue
		}
		if len(cols) > len(keys) {
			return &lineError{line: line, err: fmt.Errorf("%w: row has %d cells, the header has %d", errFieldCount, len(cols), len(keys))}
		}
		size := 0
		for _, c := range cols {
			if len(c) > rw.maxField {
				return rw.fieldTooLong(line, "cell")
			}
			size += len(c)
		}
		if size > rw.maxRecord {
			return rw.recordTooLong(line)
		}
		rw.startRecord()
		for i, k := range keys {
			rw.out = append(rw.out, k...)
			if i < len(cols) { // excelize trims trailing empty cells
				rw.out = appendJSONString(rw.out, []byte(cols[i]))
			}
			rw.out = append(rw.out, '"')
		}
		rw.out = append(rw.out, '}')
		if err := rw.endRecord(); err != nil {
			return err
		}
	}
	if err := rows.Error(); err != nil {
		return &lineError{line: line, err: err}
	}
	if keys == nil {
		return &lineError{line: 1, err: errNoHeader}
	}
	return nil
}

// checkWorkbook applies the package limits to the parts of the workbook at
// path, and bounds its shared string table.
func checkWorkbook(path string, o Options) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return &lineError{line: 0, err: fmt.Errorf("not a readable .xlsx workbook: %w", err)}
	}
	defer zr.Close()
	if err := checkEntries(zr.File, o); err != nil {
		return fmt.Errorf("inside the workbook: %w", err)
	}
	for _, f := range zr.File {
		if strings.EqualFold(f.Name, "xl/sharedStrings.xml") {
			return checkSharedStrings(f, o)
		}
	}
	return nil
}

// checkSharedStrings counts the shared strings in one streaming pass with
// bounded memory, reading at most max_shared_strings_bytes.
func checkSharedStrings(f *zip.File, o Options) error {
	tooBig := fmt.Errorf("%w: the shared string table (%s) is larger than convert.max_shared_strings_bytes (%d)",
		ErrLimitExceeded, f.Name, o.MaxSharedStringsBytes)
	if int64(f.UncompressedSize64) > o.MaxSharedStringsBytes {
		return tooBig
	}
	left := o.MaxTotalBytes
	rc, err := openEntry(f, o, &left)
	if err != nil {
		return err
	}
	defer rc.Close()
	lr := &io.LimitedReader{R: rc, N: o.MaxSharedStringsBytes + 1}
	d := xml.NewDecoder(lr)
	n := 0
	for {
		tok, err := d.RawToken()
		if lr.N <= 0 {
			return tooBig
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			line, _ := d.InputPos()
			return &lineError{line: int64(line), err: fmt.Errorf("%s: %w", f.Name, err)}
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "si" {
			if n++; n > o.MaxSharedStrings {
				return fmt.Errorf("%w: the shared string table (%s) holds more than convert.max_shared_strings (%d) strings",
					ErrLimitExceeded, f.Name, o.MaxSharedStrings)
			}
		}
	}
}
