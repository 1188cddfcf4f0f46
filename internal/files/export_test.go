package files

import "os"

// LocalWithCreateTemp is Local creating its files through createTemp, so
// tests can hand it a full disk.
func LocalWithCreateTemp(dir string, createTemp func(dir, pattern string) (*os.File, error)) Local {
	return Local{Dir: dir, createTemp: createTemp}
}
