package datapackage

import (
	"errors"
	"fmt"

	"github.com/xuri/excelize/v2"
)

// convertXLSX converts the sheet (the manifest's ExcelSheetName, else the
// first) of an .xlsx file at path: the first row gives the keys, cells are
// read raw (no number formatting), streamed row by row.
func convertXLSX(path, sheet string, rw *recordWriter) error {
	f, err := excelize.OpenFile(path, excelize.Options{RawCellValue: true})
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
