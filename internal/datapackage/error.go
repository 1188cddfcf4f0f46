package datapackage

import (
	"errors"
	"fmt"
)

// Reason classifies a failure; the values are the FailureReason of
// DataExportFailed events.
type Reason string

// Failure reasons.
const (
	ReasonCorrupt     Reason = "corrupt_package"
	ReasonUnsafe      Reason = "unsafe_entry"
	ReasonLimit       Reason = "limit_exceeded"
	ReasonUnsupported Reason = "unsupported_format"
	ReasonConvert     Reason = "convert_failed"
	// There is no package to read: the export failed in FinOps, or its
	// package (or a message's file) could not be downloaded.
	ReasonExportFailed   Reason = "export_failed"
	ReasonDownloadFailed Reason = "download_failed"
	// A snapshot could not be compared with the previous one (a duplicate
	// key, a missing key column): no change event; the snapshot's own
	// DataExportCompleted went out regardless.
	ReasonChangesFailed Reason = "changes_failed"
)

// Sentinel errors, one per reason, for errors.Is.
var (
	ErrCorrupt           = errors.New("corrupt package")
	ErrUnsafeEntry       = errors.New("unsafe entry name")
	ErrLimitExceeded     = errors.New("limit exceeded")
	ErrUnsupportedFormat = errors.New("unsupported source format")
	ErrConvert           = errors.New("conversion failed")
)

var reasonErr = map[Reason]error{ReasonCorrupt: ErrCorrupt, ReasonUnsafe: ErrUnsafeEntry,
	ReasonLimit: ErrLimitExceeded, ReasonUnsupported: ErrUnsupportedFormat, ReasonConvert: ErrConvert}

// Error is a failure to read a package or convert one of its entities.
type Error struct {
	Reason  Reason
	Package string // package file name
	Entity  string // entity name, when one entity failed
	File    string // entry name inside the package
	Line    int64  // 1-based line or record, when known
	Err     error
}

func (e *Error) Error() string {
	where := e.Package
	if e.File != "" {
		where += ": " + e.File
		if e.Line > 0 {
			where += fmt.Sprintf(" line %d", e.Line)
		}
	}
	return where + ": " + e.Err.Error()
}

// Unwrap returns both the reason's sentinel and the cause.
func (e *Error) Unwrap() []error { return []error{reasonErr[e.Reason], e.Err} }

// lineError is raised inside converters; the package layer wraps it with the
// package and file names.
type lineError struct {
	line int64
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }
