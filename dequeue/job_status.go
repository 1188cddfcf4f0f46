package dequeue

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/exportbridge/exportbridge/internal/finops"
)

// JobState is DataJobState. FinOps may send it as a number or a name; both
// decode.
type JobState int

// DataJobState values (Recurring Integrations Scheduler's enum).
const (
	StateEnqueued JobState = iota
	StateDequeued
	StateDownloaded
	StateAcked
	StateInProcess
	StateProcessed
	StateProcessedWithErrors
	StatePostProcessError
	StatePreProcessError
)

var stateNames = []string{"Enqueued", "Dequeued", "Downloaded", "Acked", "InProcess", "Processed",
	"ProcessedWithErrors", "PostProcessError", "PreProcessError"}

func (s JobState) String() string {
	if int(s) >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "JobState(" + strconv.Itoa(int(s)) + ")"
}

// Terminal reports whether the job will not change state again.
func (s JobState) Terminal() bool { return s >= StateProcessed }

// UnmarshalJSON accepts 5 and "Processed" alike.
func (s *JobState) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*s = JobState(n)
		return nil
	}
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("DataJobState: %s is neither a number nor a name", b)
	}
	for i, known := range stateNames {
		if strings.EqualFold(known, name) {
			*s = JobState(i)
			return nil
		}
	}
	return fmt.Errorf("DataJobState: unknown state %q", name)
}

// JobStatus is the answer of /api/connector/jobstatus.
type JobStatus struct {
	DataJobStatus struct {
		DataProject         string   `json:"DataProject"`
		DataJobIdentifier   string   `json:"DataJobIdentifier"`
		ExecutionIdentifier string   `json:"ExecutionIdentifier"`
		DataJobState        JobState `json:"DataJobState"`
	} `json:"DataJobStatus"`
	ExecutionLog    string            `json:"ExecutionLog"`
	ExecutionDetail []json.RawMessage `json:"ExecutionDetail"`
}

// JobStatus reads the status of the message messageID (quotes and braces
// are stripped, as RIS does with enqueue answers).
func (s *Source) JobStatus(ctx context.Context, messageID string) (*JobStatus, error) {
	id := strings.Trim(messageID, `"{} `)
	resp, err := s.client.Do(ctx, finops.Request{Op: "jobstatus", Method: http.MethodGet,
		Path: "api/connector/jobstatus/" + url.PathEscape(s.activity), Query: url.Values{"jobId": {id}}})
	if err != nil {
		return nil, err
	}
	var st JobStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil {
		return nil, fmt.Errorf("finops jobstatus: decoding answer: %w", err)
	}
	return &st, nil
}
