// Package datapackage reads FinOps data-management (DMF) packages and
// converts each entity file to JSON.
//
// A package is a zip of one file per entity plus Manifest.xml (which maps
// files to entity names and source formats) and PackageHeader.xml. Reading
// is defensive: entry count, sizes and compression ratios are limited,
// unsafe entry names are refused, and every error names the package, the
// entity file and, where known, the line. Conversion streams: memory does
// not grow with the file. Delimited text is converted by a hand-written
// parser that writes JSON directly (the hot path; see the benchmarks), with
// decompression running ahead on another goroutine.
package datapackage
