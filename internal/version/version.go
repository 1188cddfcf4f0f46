// Package version is the product's one version: what `exportbridge version`
// prints and what every outgoing request (FinOps calls, webhooks) says in
// User-Agent.
package version

import (
	"runtime/debug"
	"sync"
)

// version is set at build time:
//
//	go build -ldflags "-X github.com/exportbridge/exportbridge/internal/version.version=1.4.0" ./cmd/exportbridge
var version = ""

var resolved = sync.OnceValue(func() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
})

// String returns the version: the build's -X value, else the module
// version of a `go install`ed binary, else "dev".
func String() string { return resolved() }

// UserAgent is the User-Agent of every request exportbridge makes.
func UserAgent() string { return "exportbridge/" + String() }
