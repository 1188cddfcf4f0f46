package adapter

import (
	"os"
	"syscall"
)

// FailpointEnv names the environment variable that makes the process kill
// itself with SIGKILL when it reaches the named point. It exists for the
// crash tests, which must kill the real binary at exact moments; it has no
// effect unless set.
const FailpointEnv = "EXPORTBRIDGE_FAILPOINT"

// Failpoint names.
const (
	fpAfterDownload = "after-download"  // a package is downloaded, nothing committed
	fpAfterCommit   = "after-commit"    // committed, not yet acknowledged
	fpDuringDeliver = "during-delivery" // an attempt is being sent
	fpWhilePolling  = "while-polling"   // a package export is started and polled
)

var failpoint = os.Getenv(FailpointEnv)

// maybeCrash kills the process if the failpoint name is armed.
func maybeCrash(name string) {
	if failpoint == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable to a handler; wait for it
	}
}
