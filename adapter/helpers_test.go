package adapter

import "github.com/exportbridge/exportbridge/internal/finopssim"

func zipWith(files map[string]string) []byte {
	m := make(map[string][]byte, len(files))
	for n, d := range files {
		m[n] = []byte(d)
	}
	return finopssim.ZipMap(m)
}
