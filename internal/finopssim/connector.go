package finopssim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// message is one file or package queued for a recurring export job.
type message struct {
	correlationID string
	blob          string
	data          []byte
	visibleAt     time.Time
	popReceipt    string
	dequeues      int
	lastDequeue   time.Time
	acked         bool
}

// MessageState is a queued message as tests see it.
type MessageState struct {
	CorrelationID string `json:"correlation_id"`
	Blob          string `json:"blob"`
	Dequeues      int    `json:"dequeues"`
	Acked         bool   `json:"acked"`
}

// Enqueue puts a file or package on activity's queue and returns its
// CorrelationId.
func (s *Server) Enqueue(activity string, data []byte) string {
	m := &message{correlationID: s.nextID(), blob: s.nextID(), data: data}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := normActivity(activity)
	s.queues[key] = append(s.queues[key], m)
	return m.correlationID
}

// EnqueueSample enqueues a generated sample package and returns the package
// (for comparing converted output) and its CorrelationId.
func (s *Server) EnqueueSample(activity string) (Package, string) {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	p := SamplePackage("Recurring export", s.cfg.Rows, seq)
	return p, s.Enqueue(activity, p.Zip())
}

// Messages returns the state of every message ever queued on activity.
func (s *Server) Messages(activity string) []MessageState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []MessageState
	for _, m := range s.queues[normActivity(activity)] {
		out = append(out, MessageState{CorrelationID: m.correlationID, Blob: m.blob, Dequeues: m.dequeues, Acked: m.acked})
	}
	return out
}

// normActivity accepts the activity id with or without braces, any case, as
// FinOps does ("%7B…%7D" in the docs, bare in RIS).
func normActivity(a string) string {
	if u, err := url.PathUnescape(a); err == nil {
		a = u
	}
	return strings.ToLower(strings.Trim(a, "{}"))
}

// dequeueBody is the dequeue answer; note the capital L of "DownLoad" as in
// every client that models it.
type dequeueBody struct {
	CorrelationID            string  `json:"CorrelationId"`
	PopReceipt               string  `json:"PopReceipt"`
	DownloadLocation         string  `json:"DownloadLocation"`
	IsDownLoadFileExist      bool    `json:"IsDownLoadFileExist"`
	FileDownLoadErrorMessage string  `json:"FileDownLoadErrorMessage"`
	LastDequeueDateTime      *string `json:"LastDequeueDateTime"`
}

func (s *Server) handleDequeue(w http.ResponseWriter, r *http.Request) {
	activity := r.PathValue("activity")
	now := s.now()
	s.mu.Lock()
	var m *message
	for _, cand := range s.queues[normActivity(activity)] {
		if !cand.acked && !now.Before(cand.visibleAt) {
			m = cand
			break
		}
	}
	if m == nil {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var last *string
	if m.dequeues > 0 {
		ts := m.lastDequeue.UTC().Format(time.RFC3339)
		last = &ts
	}
	m.dequeues++
	m.lastDequeue = now
	m.visibleAt = now.Add(s.cfg.VisibilityTimeout)
	m.popReceipt = base64.StdEncoding.EncodeToString([]byte(s.nextID()[:12]))
	body := dequeueBody{
		CorrelationID:       m.correlationID,
		PopReceipt:          m.popReceipt,
		DownloadLocation:    fmt.Sprintf("%s/api/connector/download/%%7B%s%%7D?correlation-id=%s&blob=%s", baseURL(r), normActivity(activity), m.correlationID, m.blob),
		IsDownLoadFileExist: true,
		LastDequeueDateTime: last,
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) findMessage(activity, correlationID, blob string) *message {
	for _, m := range s.queues[normActivity(activity)] {
		if (correlationID == "" || m.correlationID == correlationID) && (blob == "" || m.blob == blob) {
			return m
		}
	}
	return nil
}

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	m := s.findMessage(r.PathValue("activity"), r.URL.Query().Get("correlation-id"), r.URL.Query().Get("blob"))
	var data []byte
	if m != nil {
		data = m.data
	}
	s.mu.Unlock()
	if m == nil {
		writeODataError(w, http.StatusNotFound, "The blob was not found or has been deleted.")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	_, _ = w.Write(data)
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var body dequeueBody
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil || body.CorrelationID == "" || body.PopReceipt == "" {
		writeODataError(w, http.StatusBadRequest, "The acknowledgement body must be the dequeue response.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessage(r.PathValue("activity"), body.CorrelationID, "")
	switch {
	case m == nil:
		writeODataError(w, http.StatusNotFound, "Message "+body.CorrelationID+" was not found.")
	case m.acked:
		w.WriteHeader(http.StatusOK) // acknowledging twice is harmless
	case m.popReceipt != body.PopReceipt:
		// As with an Azure Storage queue: only the latest pop receipt is valid.
		writeODataError(w, http.StatusBadRequest, "The pop receipt does not match; the message was dequeued again.")
	default:
		m.acked = true
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) handleJobStatus(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(r.URL.Query().Get("jobId"), `"{}`)
	s.mu.Lock()
	m := s.findMessage(r.PathValue("activity"), id, "")
	var state int
	if m != nil {
		state = 1 // Dequeued
		if m.acked {
			state = 3 // Acked
		}
	}
	s.mu.Unlock()
	if m == nil {
		writeODataError(w, http.StatusNotFound, "Job "+id+" was not found.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"DataJobStatus":   map[string]any{"DataJobIdentifier": id, "DataJobState": state},
		"ExecutionLog":    "",
		"ExecutionDetail": []any{},
	})
}

func (s *Server) handleSimEnqueue(w http.ResponseWriter, r *http.Request) {
	activity := r.PathValue("activity")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<30))
	var id string
	if len(body) == 0 {
		_, id = s.EnqueueSample(activity)
	} else {
		id = s.Enqueue(activity, body)
	}
	writeJSON(w, http.StatusOK, map[string]string{"CorrelationId": id})
}
