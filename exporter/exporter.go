// Package exporter is the package-export source: it starts a FinOps data
// management export (ExportToPackage), polls it to completion
// (GetExecutionSummaryStatus), fetches the package URL
// (GetExportedPackageUrl) and downloads the package, and reads the errors of
// a failed export (GetExecutionErrors).
//
// The executionId is chosen here, before the export is started, so the
// caller can store it first and resume polling after a restart instead of
// starting the same export twice.
package exporter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/redact"
)

// Sentinel errors.
var (
	// ErrExportFailed: the export ended Failed, Canceled or Unknown. The
	// *FailedError carries the status and GetExecutionErrors' text.
	ErrExportFailed = errors.New("package export failed")
	// ErrTimeout: the export did not finish within the job's timeout.
	ErrTimeout = errors.New("package export timed out")
	// ErrNoPackageURL: GetExportedPackageUrl kept answering "".
	ErrNoPackageURL = errors.New("package URL not available")
	// ErrNotFound: FinOps has no execution with that id (yet).
	ErrNotFound = errors.New("execution not found")
	// ErrRejected: FinOps refused to start the export for good (a 4xx other
	// than 429, e.g. an unknown definition group); trying again cannot help.
	ErrRejected = errors.New("package export rejected")
)

const actionPath = "data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."

// Exporter runs package exports on one FinOps environment.
type Exporter struct {
	client *finops.Client
	wait   func(ctx context.Context, d time.Duration) error
	now    func() time.Time
}

// Option adjusts an Exporter (tests).
type Option func(*Exporter)

// WithWait replaces the poll-interval wait.
func WithWait(w func(ctx context.Context, d time.Duration) error) Option {
	return func(e *Exporter) { e.wait = w }
}

// WithClock replaces time.Now (timeouts, execution ids).
func WithClock(now func() time.Time) Option { return func(e *Exporter) { e.now = now } }

// New returns an Exporter on client.
func New(client *finops.Client, opts ...Option) *Exporter {
	e := &Exporter{client: client, wait: finops.Sleep, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Spec names what to export.
type Spec struct {
	Job             string // exportbridge job name, used in the executionId
	DefinitionGroup string // the export project (data project) name
	LegalEntity     string
}

// NewExecutionID returns "<job>-<UTC yyyymmddThhmmssZ>-<8 hex>": sortable,
// traceable to the job in the FinOps UI, unique without coordination.
func NewExecutionID(job string, now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", job, now.UTC().Format("20060102T150405Z"), hex.EncodeToString(b))
}

// Start calls ExportToPackage with executionID (from NewExecutionID, stored
// by the caller first). Calling it again with the same id does not start a
// second export in FinOps; it returns the id FinOps reports.
func (e *Exporter) Start(ctx context.Context, spec Spec, executionID string) (string, error) {
	v, err := e.action(ctx, "ExportToPackage", map[string]any{
		"definitionGroupId": spec.DefinitionGroup,
		"packageName":       executionID,
		"executionId":       executionID,
		"reExecute":         false,
		"legalEntityId":     spec.LegalEntity,
	})
	var se *finops.StatusError
	if errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != http.StatusTooManyRequests {
		return "", fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if err != nil {
		return "", err
	}
	if v == "" {
		return executionID, nil
	}
	return v, nil
}

// Status is a DMFExecutionSummaryStatus value.
type Status string

// Known statuses.
const (
	StatusUnknown            Status = "Unknown"
	StatusNotRun             Status = "NotRun"
	StatusExecuting          Status = "Executing"
	StatusSucceeded          Status = "Succeeded"
	StatusPartiallySucceeded Status = "PartiallySucceeded"
	StatusFailed             Status = "Failed"
	StatusCanceled           Status = "Canceled"
)

// Done reports success; Pending that polling should go on.
func (s Status) Done() bool {
	return strings.EqualFold(string(s), string(StatusSucceeded)) || strings.EqualFold(string(s), string(StatusPartiallySucceeded))
}

// Pending reports whether the export is still running. "Queued" is not
// documented but has been seen; treat it as running.
func (s Status) Pending() bool {
	for _, p := range []Status{StatusNotRun, StatusExecuting, "Queued", ""} {
		if strings.EqualFold(string(s), string(p)) {
			return true
		}
	}
	return false
}

// FailedError is an export that ended without success.
type FailedError struct {
	ExecutionID string
	Status      Status
	Errors      string // GetExecutionErrors' text, or why it could not be read
}

func (e *FailedError) Error() string {
	msg := fmt.Sprintf("package export %s ended %s", e.ExecutionID, e.Status)
	if e.Errors != "" {
		msg += ": " + e.Errors
	}
	return msg
}

func (e *FailedError) Unwrap() error { return ErrExportFailed }

// Status reads an export's status once; ErrNotFound when FinOps knows no
// execution with that id (it answers 400 "were not found").
func (e *Exporter) Status(ctx context.Context, executionID string) (Status, error) {
	v, err := e.action(ctx, "GetExecutionSummaryStatus", map[string]any{"executionId": executionID})
	if isNotFound(err) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, executionID)
	}
	return Status(v), err
}

func isNotFound(err error) bool {
	return finops.IsStatus(err, http.StatusBadRequest) && strings.Contains(err.Error(), "were not found")
}

// WaitForCompletion polls GetExecutionSummaryStatus every interval until the
// export succeeds, fails (a *FailedError with GetExecutionErrors' text) or
// timeout passes (ErrTimeout). A 400 "were not found" right after the start
// means the execution record is not written yet: pending. onPoll, when not
// nil, sees every status.
func (e *Exporter) WaitForCompletion(ctx context.Context, executionID string, interval, timeout time.Duration, onPoll func(Status)) (Status, error) {
	deadline := e.now().Add(timeout)
	for {
		v, err := e.action(ctx, "GetExecutionSummaryStatus", map[string]any{"executionId": executionID})
		var st Status
		switch {
		case err == nil:
			st = Status(v)
		case isNotFound(err):
			st = StatusNotRun
		default:
			return "", err
		}
		if onPoll != nil {
			onPoll(st)
		}
		switch {
		case st.Done():
			return st, nil
		case !st.Pending():
			return st, &FailedError{ExecutionID: executionID, Status: st, Errors: e.executionErrors(ctx, executionID)}
		}
		if !e.now().Add(interval).Before(deadline) {
			return st, fmt.Errorf("%w: %s still %s after %s", ErrTimeout, executionID, st, timeout)
		}
		if err := e.wait(ctx, interval); err != nil {
			return st, err
		}
	}
}

// ExecutionError is one entry of GetExecutionErrors.
type ExecutionError struct {
	RecordID     string `json:"RecordId"`
	Field        string `json:"Field"`
	ErrorMessage string `json:"ErrorMessage"`
}

// ExecutionErrors returns GetExecutionErrors' list.
func (e *Exporter) ExecutionErrors(ctx context.Context, executionID string) ([]ExecutionError, error) {
	v, err := e.action(ctx, "GetExecutionErrors", map[string]any{"executionId": executionID})
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var list []ExecutionError
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return nil, fmt.Errorf("GetExecutionErrors: value is not a JSON list: %w (%.200q)", err, v)
	}
	return list, nil
}

// executionErrors renders GetExecutionErrors for a FailedError; a failure to
// read them is reported in the text rather than hiding the export failure.
func (e *Exporter) executionErrors(ctx context.Context, executionID string) string {
	list, err := e.ExecutionErrors(ctx, executionID)
	if err != nil {
		return "(could not read GetExecutionErrors: " + err.Error() + ")"
	}
	parts := make([]string, 0, len(list))
	for _, x := range list {
		p := x.ErrorMessage
		if x.Field != "" {
			p = x.Field + ": " + p
		}
		if x.RecordID != "" {
			p = "record " + x.RecordID + ": " + p
		}
		parts = append(parts, p)
	}
	// The text goes into an event and the logs: bounded, however many
	// errors FinOps lists.
	return redact.Excerpt(strings.Join(parts, "; "), 4096)
}

// PackageURL asks GetExportedPackageUrl until it returns a URL: FinOps
// answers "" for a while after success, until the package is written.
func (e *Exporter) PackageURL(ctx context.Context, executionID string, interval time.Duration, attempts int) (string, error) {
	for i := 0; i < attempts; i++ {
		v, err := e.action(ctx, "GetExportedPackageUrl", map[string]any{"executionId": executionID})
		if err != nil {
			return "", err
		}
		if v != "" {
			return v, nil
		}
		if err := e.wait(ctx, interval); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("%w: %s gave an empty URL %d times", ErrNoPackageURL, executionID, attempts)
}

// Download fetches the package of a finished export into dir. The blob URL
// is a SAS URL and is fetched without a bearer token; on 403 (the SAS may
// have expired between asking and fetching) a fresh URL is asked for once.
func (e *Exporter) Download(ctx context.Context, executionID, dir string, interval time.Duration, progress func(received, total int64)) (*finops.Download, error) {
	for attempt := 0; ; attempt++ {
		u, err := e.PackageURL(ctx, executionID, interval, 100)
		if err != nil {
			return nil, err
		}
		dl, err := e.client.Download(ctx, finops.Request{Op: "package download", Method: http.MethodGet, Path: u, NoAuth: true, Progress: progress}, dir)
		if err != nil && attempt == 0 && finops.IsStatus(err, http.StatusForbidden) {
			continue
		}
		return dl, err
	}
}

// action calls a DataManagementDefinitionGroups action and returns its
// `value` as a string. Working clients read a flat string; some docs show
// {"value":{"value":"…"}}, which is accepted too.
func (e *Exporter) action(ctx context.Context, name string, body map[string]any) (string, error) {
	resp, err := e.client.Do(ctx, finops.Request{Op: name, Method: http.MethodPost, Path: actionPath + name, JSON: body})
	if err != nil {
		return "", err
	}
	return decodeValue(name, resp.Body)
}

func decodeValue(op string, body []byte) (string, error) {
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", fmt.Errorf("%s: answer is not JSON: %w (%.200q)", op, err, body)
	}
	var s string
	if err := json.Unmarshal(env.Value, &s); err == nil {
		return s, nil
	}
	var nested struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(env.Value, &nested); err == nil {
		return nested.Value, nil
	}
	return "", fmt.Errorf("%s: `value` is neither a string nor {\"value\": string}: %.200s", op, env.Value)
}
