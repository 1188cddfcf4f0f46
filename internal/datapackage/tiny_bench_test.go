package datapackage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// BenchmarkConvertSmallPackage is the per-package overhead: a 3-entity
// package of 3 rows each (what most recurring exports look like).
func BenchmarkConvertSmallPackage(b *testing.B) {
	dir := b.TempDir()
	pkg := filepath.Join(dir, "p.zip")
	if err := os.WriteFile(pkg, finopssim.SamplePackage("x", 3, 1).Zip(), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out := filepath.Join(dir, "out")
		if _, err := Convert(context.Background(), pkg, out, Options{}); err != nil {
			b.Fatal(err)
		}
		_ = os.RemoveAll(out)
	}
}
