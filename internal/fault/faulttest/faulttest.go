// Package faulttest meets the environment's faults for real in tests: a
// full disk is the kernel's own ENOSPC, not a hand-made error value.
package faulttest

import (
	"os"
	"syscall"
	"testing"
)

// Unavailable skips a test that cannot meet its fault on this machine, saying
// why; under CI (CI=true) it fails instead, so that a CI machine that lost
// the capability cannot pass by skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must be able to run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}

// CreateTemp has the shape of os.CreateTemp.
type CreateTemp func(dir, pattern string) (*os.File, error)

// DevFull returns a CreateTemp that creates each file as usual but hands back
// a descriptor of /dev/full under the file's name: every write fails with
// ENOSPC, as on a full disk, and cleanup by name removes the real temp file
// (never /dev/full itself). While full() is false it is os.CreateTemp.
func DevFull(t testing.TB, full func() bool) CreateTemp {
	t.Helper()
	if _, err := os.Stat("/dev/full"); err != nil {
		Unavailable(t, "this machine has no /dev/full: a real ENOSPC cannot be met")
	}
	return func(dir, pattern string) (*os.File, error) {
		tmp, err := os.CreateTemp(dir, pattern)
		if err != nil || (full != nil && !full()) {
			return tmp, err
		}
		tmp.Close()
		dev, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		defer dev.Close()
		fd, err := syscall.Dup(int(dev.Fd()))
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), tmp.Name()), nil
	}
}
