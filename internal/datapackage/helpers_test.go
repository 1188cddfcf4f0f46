package datapackage

import (
	"encoding/csv"
	"io"
	"os"
	"testing"

	"github.com/xuri/excelize/v2"
)

func csvReader(r io.Reader) *csv.Reader { return csv.NewReader(r) }

// writeXLSX writes a workbook with a header and rows data rows; returns its size.
func writeXLSX(tb testing.TB, path string, rows int) int64 {
	tb.Helper()
	f := excelize.NewFile()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		tb.Fatal(err)
	}
	if err := sw.SetRow("A1", []any{"ASSETID", "NAME", "ACQUISITIONPRICE"}); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(cell, []any{"FA-" + itoa(i), "Machine, \"heavy\" ü", 1234.5 + float64(i)}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.SaveAs(path); err != nil {
		tb.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

func itoa(i int) string {
	const d = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{d[i%10]}, b...)
	}
	return string(b)
}
