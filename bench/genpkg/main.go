// Command genpkg writes a DMF package with one large CSV entity for the
// conversion benchmark (bench/convert.sh): realistic text with commas,
// quotes, quoted line breaks, non-ASCII, empty fields, a UTF-8 BOM and CRLF.
package main

import (
	"bufio"
	"flag"
	"log"
	"os"

	"github.com/klauspost/compress/zip"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

func main() {
	out := flag.String("out", "bench.zip", "package to write")
	rows := flag.Int("rows", 1_200_000, "records (1.2M ≈ 200 MB of CSV)")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.Create("Customers V3.csv")
	if err != nil {
		log.Fatal(err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cols := finopssim.WriteCustomersCSV(bw, *rows)
	if err := bw.Flush(); err != nil {
		log.Fatal(err)
	}
	p := finopssim.Package{DefinitionGroup: "Customers benchmark", Entities: []finopssim.Entity{{Name: "Customers V3", File: "Customers V3.csv", Format: "CSV", Columns: cols}}}
	for name, data := range p.MetadataFiles() {
		mw, err := zw.Create(name)
		if err != nil {
			log.Fatal(err)
		}
		mw.Write(data)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
