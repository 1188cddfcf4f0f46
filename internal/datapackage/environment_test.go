package datapackage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/fault/faulttest"
)

// TestFullDiskIsNotThePackagesFault: a write failing with ENOSPC returns an
// error that is not an *Error (so nothing is quarantined or announced), names
// the package and the entry, and leaves nothing behind.
func TestFullDiskIsNotThePackagesFault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, path string)
	}{
		{"package", func(t *testing.T, path string) {
			buildPackage(t, path, []manifestEntry{
				{name: "Customers", file: "Customers.csv", format: "CSV-Unicode", data: []byte("A,B\r\n1,2\r\n")},
				{name: "Vendors", file: "Vendors.csv", format: "CSV-Unicode", data: []byte("A,B\r\n3,4\r\n")},
			})
		}},
		{"bare file", func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, []byte("A,B\n1,2\n"), 0o600)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pkg := filepath.Join(dir, "msg-1.zip")
			tc.build(t, pkg)
			out := filepath.Join(dir, "out")
			conv, err := Convert(context.Background(), pkg, out, Options{CreateTemp: faulttest.DevFull(t, nil)})
			require.Error(t, err)
			require.Nil(t, conv)
			var de *Error
			require.False(t, errors.As(err, &de), "a full disk must not be reported as the package's fault: %v", err)
			require.ErrorIs(t, err, syscall.ENOSPC)
			require.True(t, fault.IsEnvironment(err))
			require.Contains(t, err.Error(), "msg-1.zip")
			require.Equal(t, []string{out}, dirState(t, out), "nothing left in the output directory")
		})
	}
}

// TestUnreadablePackageIsNotCorrupt: a package that cannot be opened
// (permissions, a vanished file) is the environment's fault.
func TestUnreadablePackageIsNotCorrupt(t *testing.T) {
	t.Parallel()
	_, err := Convert(context.Background(), filepath.Join(t.TempDir(), "gone.zip"), t.TempDir(), Options{})
	require.Error(t, err)
	var de *Error
	require.False(t, errors.As(err, &de), "%v", err)
	require.True(t, fault.IsEnvironment(err))
}
