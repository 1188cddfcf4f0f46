// Package dequeue is the recurring-integration source: it takes messages off
// a FinOps recurring export job's queue (dequeue), downloads each message's
// file or package, acknowledges it (ack) once the caller has durably
// committed the result, and reads job status.
//
// Until a message is acknowledged FinOps makes it visible again every 30
// minutes, so delivery is at least once; Message carries the three keys a
// caller needs to recognise a redelivery: CorrelationId, the blob id in
// DownloadLocation, and (after Download) the content hash.
package dequeue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/redact"
)

// Source reads one recurring export job's queue.
type Source struct {
	client   *finops.Client
	activity string // activity id, braces stripped
	https    bool   // base URL is https: rewrite DownloadLocation's http://
}

// New returns a Source for the recurring job activityID on client.
func New(client *finops.Client, activityID string) *Source {
	return &Source{
		client:   client,
		activity: strings.Trim(strings.TrimSpace(activityID), "{}"),
		https:    strings.HasPrefix(client.BaseURL(), "https://"),
	}
}

// Message is one dequeued message.
type Message struct {
	CorrelationID    string `json:"CorrelationId"`
	PopReceipt       string `json:"PopReceipt"`
	DownloadLocation string `json:"DownloadLocation"`
	// IsDownLoadFileExist is false when FinOps queued a message whose file is
	// gone; FileDownLoadErrorMessage then says why.
	IsDownLoadFileExist      *bool `json:"IsDownLoadFileExist"`
	FileDownLoadErrorMessage any   `json:"FileDownLoadErrorMessage"`
	LastDequeueDateTime      any   `json:"LastDequeueDateTime"`

	// Raw is the dequeue response body exactly as received: it is what Ack
	// sends back.
	Raw []byte `json:"-"`
	// BlobID is the `blob` query parameter of DownloadLocation, stable across
	// redeliveries even if CorrelationId were not.
	BlobID string `json:"-"`
}

// FileMissing returns FinOps's reason when the message has no file.
func (m *Message) FileMissing() (string, bool) {
	if m.IsDownLoadFileExist == nil || *m.IsDownLoadFileExist {
		return "", false
	}
	msg := redact.Excerpt(fmt.Sprint(m.FileDownLoadErrorMessage), 1024)
	if m.FileDownLoadErrorMessage == nil {
		msg = "FinOps reports no file for this message"
	}
	return msg, true
}

// Dequeue takes the next visible message, or returns (nil, nil) when the
// queue is empty (HTTP 204).
func (s *Source) Dequeue(ctx context.Context) (*Message, error) {
	resp, err := s.client.Do(ctx, finops.Request{Op: "dequeue", Method: http.MethodGet,
		Path: "api/connector/dequeue/" + url.PathEscape(s.activity)})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent || len(strings.TrimSpace(string(resp.Body))) == 0 {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("finops dequeue: unexpected HTTP %d: %.200s", resp.StatusCode, resp.Body)
	}
	var m Message
	if err := json.Unmarshal(resp.Body, &m); err != nil {
		return nil, fmt.Errorf("finops dequeue: decoding answer: %w (body %.200q)", err, resp.Body)
	}
	if m.CorrelationID == "" || m.DownloadLocation == "" {
		return nil, fmt.Errorf("finops dequeue: answer lacks CorrelationId or DownloadLocation (body %.200q)", resp.Body)
	}
	m.Raw = resp.Body
	if u, err := url.Parse(m.DownloadLocation); err == nil {
		m.BlobID = strings.Trim(u.Query().Get("blob"), "{}")
	}
	// The ids become store keys, log fields and file names: keep them
	// bounded. A longer id keeps its identity through a hash.
	m.CorrelationID, m.BlobID = boundedID(m.CorrelationID), boundedID(m.BlobID)
	return &m, nil
}

// maxIDLen bounds an id from FinOps (real ones are GUIDs, 36 bytes).
const maxIDLen = 128

// boundedID returns id, or for an id over maxIDLen its start and a hash of
// the whole, so two long ids that share a prefix stay distinct.
func boundedID(id string) string {
	if len(id) <= maxIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return strings.ToValidUTF8(id[:64], "") + "~sha256:" + hex.EncodeToString(sum[:12])
}

// DownloadURL returns the URL Download fetches: DownloadLocation with http
// rewritten to https when the environment is https (behind FinOps's load
// balancer DownloadLocation comes back as http://).
func (s *Source) DownloadURL(m *Message) string {
	loc := m.DownloadLocation
	if s.https && strings.HasPrefix(loc, "http://") {
		if u, err := url.Parse(loc); err == nil {
			u.Scheme = "https"
			u.Host = u.Hostname() // drop an explicit :80, as RIS does
			return u.String()
		}
	}
	return loc
}

// Download fetches the message's file with the bearer token into dir;
// progress, when not nil, sees the bytes as they arrive.
func (s *Source) Download(ctx context.Context, m *Message, dir string, progress func(received, total int64)) (*finops.Download, error) {
	return s.client.Download(ctx, finops.Request{Op: "download", Method: http.MethodGet, Path: s.DownloadURL(m), Progress: progress}, dir)
}

// Ack acknowledges m by posting the dequeue body back, as FinOps requires.
func (s *Source) Ack(ctx context.Context, m *Message) error {
	_, err := s.client.Do(ctx, finops.Request{Op: "ack", Method: http.MethodPost,
		Path: "api/connector/ack/" + url.PathEscape(s.activity), Body: m.Raw, ContentType: "application/json"})
	return err
}
