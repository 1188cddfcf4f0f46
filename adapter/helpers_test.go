package adapter

import (
	"sort"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

func zipWith(files map[string]string) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []finopssim.ZipEntry
	for _, n := range names {
		entries = append(entries, finopssim.ZipEntry{Name: n, Data: []byte(files[n])})
	}
	return finopssim.Zip(entries...)
}
