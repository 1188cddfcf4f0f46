package store

import (
	"fmt"
	"os"
	"syscall"
)

// fileIdent is what makes a file the same file: its device and inode. A
// path can be unlinked and recreated; these tell.
type fileIdent struct {
	dev, ino uint64
	mode     os.FileMode
}

func identOf(path string) (fileIdent, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileIdent{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdent{}, fmt.Errorf("stat %s: no device and inode on this platform", path)
	}
	return fileIdent{dev: uint64(st.Dev), ino: st.Ino, mode: fi.Mode()}, nil
}
