package fault_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/fault"
)

func TestIsEnvironment(t *testing.T) {
	t.Parallel()
	_, openErr := os.Open(filepath.Join(t.TempDir(), "missing"))
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	var enospc error
	if err == nil {
		_, enospc = full.Write([]byte("x"))
		full.Close()
	} else {
		enospc = &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ENOSPC from the kernel", fmt.Errorf("writing output: %w", enospc), true},
		{"EIO", &os.PathError{Op: "read", Path: "p", Err: syscall.EIO}, true},
		{"EACCES", fmt.Errorf("x: %w", syscall.EACCES), true},
		{"open missing file", openErr, true},
		{"rename", &os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EXDEV}, true},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), true},
		{"deadline", context.DeadlineExceeded, true},
		{"closed store", fmt.Errorf("store: %w", sql.ErrConnDone), true},
		{"marked", fmt.Errorf("store replaced: %w", fault.ErrEnvironment), true},
		{"parse error", errors.New(`line 3: bare " in non-quoted field`), false},
		{"connection refused", fmt.Errorf("finops dequeue: %w", &url.Error{Op: "Get", URL: "http://h", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}), false},
		{"dial error", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}, false},
		{"unexpected EOF in a zip entry", io.ErrUnexpectedEOF, false},
	} {
		require.Equal(t, tc.want, fault.IsEnvironment(tc.err), tc.name)
	}
}
