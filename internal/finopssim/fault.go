package finopssim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Fault changes the answer to matching requests. Faults are checked in the
// order added; the first that matches and has uses left applies.
type Fault struct {
	Method     string        `json:"method"`      // "" matches any
	PathPrefix string        `json:"path_prefix"` // e.g. "/api/connector/dequeue/"
	Times      int           `json:"times"`       // uses left; ≤ 0 means every request
	Status     int           `json:"status"`      // answer this status (with an OData error body)
	RetryAfter string        `json:"retry_after"` // Retry-After header value with Status
	Delay      time.Duration `json:"delay"`       // wait before answering (or before Status)
	// Truncate lets the request through but cuts the response body in half
	// while announcing the full Content-Length: a connection dropped mid-body.
	Truncate bool `json:"truncate"`
}

// InjectFault adds f.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) takeFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.Method+" "+r.URL.Path]++
	s.agents[r.UserAgent()]++
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			cp := *f
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
				}
			}
			return &cp
		}
	}
	return nil
}

func (s *Server) withFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sim/") {
			next.ServeHTTP(w, r)
			return
		}
		f := s.takeFault(r)
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		switch {
		case f.Status != 0:
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			writeODataError(w, f.Status, "Injected fault: HTTP "+http.StatusText(f.Status))
		case f.Truncate:
			tw := &truncatingWriter{ResponseWriter: w}
			next.ServeHTTP(tw, r)
			tw.flush()
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// truncatingWriter buffers a response and sends the full Content-Length but
// only half the body; net/http then closes the connection.
type truncatingWriter struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (t *truncatingWriter) WriteHeader(code int) { t.status = code }
func (t *truncatingWriter) Write(b []byte) (int, error) {
	t.body = append(t.body, b...)
	return len(b), nil
}

func (t *truncatingWriter) flush() {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	t.ResponseWriter.Header().Set("Content-Length", itoa(len(t.body)))
	t.ResponseWriter.WriteHeader(t.status)
	_, _ = t.ResponseWriter.Write(t.body[:len(t.body)/2])
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (s *Server) handleSimFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
		http.Error(w, "bad fault: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.InjectFault(f)
	w.WriteHeader(http.StatusNoContent)
}
