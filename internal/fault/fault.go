// Package fault tells the machine's faults from the data's. Only a
// package's content may quarantine it; an error from the environment (a
// full disk, an I/O error, a permission, a closed store, a cancelled
// context) is not the package's fault: the run ends with that error, nothing
// is published or acknowledged, and the work is done again later.
package fault

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// IsEnvironment reports whether err comes from the machine rather than from
// the data being read: any file-system or system-call error, a closed
// database, a cancelled or expired context. Network errors are not the
// machine's: a FinOps or subscriber outage is reported as an ordinary failed
// run, not as a fault that makes this node unready.
//
// Parsers never produce these: they report content errors with their own
// types. Every byte a converter reads comes from a file this process wrote
// itself, so an I/O error while reading it is the disk's, not the data's.
func IsEnvironment(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrEnvironment) {
		return true
	}
	// Not net.Error: syscall.Errno implements that interface too.
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return false // a refused connection carries an errno too
	}
	var (
		pathErr *fs.PathError
		linkErr *os.LinkError
		sysErr  *os.SyscallError
		errno   syscall.Errno
	)
	return errors.As(err, &pathErr) || errors.As(err, &linkErr) || errors.As(err, &sysErr) || errors.As(err, &errno) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, os.ErrClosed)
}

// ErrEnvironment marks an error as the environment's where no system error
// says so (a store found gone or replaced, a lost lease).
var ErrEnvironment = errors.New("environment fault")
