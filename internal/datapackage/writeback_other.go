//go:build !linux

package datapackage

import "os"

func startWriteback(*os.File, int64, int64) {}
