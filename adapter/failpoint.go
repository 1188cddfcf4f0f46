package adapter

import (
	"os"
	"syscall"
)

// FailpointEnv names the environment variable that makes the process kill
// itself with SIGKILL when it reaches the named point. It exists for the
// crash tests, which must kill the real binary at exact moments; main reads
// it and passes it down (AppOptions.Failpoint); it has no effect unless set.
const FailpointEnv = "EXPORTBRIDGE_FAILPOINT"

// Failpoint names besides the runner's (pipeline.PointAfterDownload,
// pipeline.PointAfterCommit).
const (
	fpDuringDeliver = "during-delivery" // an attempt is being sent
	fpWhilePolling  = "while-polling"   // a package export is started and polled
)

// Failpoint is the armed failpoint ("" for none).
type Failpoint string

// reached kills the process if name is the armed failpoint.
func (f Failpoint) reached(name string) {
	if f != "" && string(f) == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable to a handler; wait for it
	}
}
