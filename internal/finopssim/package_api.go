package finopssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ExecutionError is one entry of GetExecutionErrors.
type ExecutionError struct {
	RecordID     string `json:"RecordId"`
	Field        string `json:"Field"`
	ErrorMessage string `json:"ErrorMessage"`
}

type execution struct {
	id, group, legalEntity string
	polls, urlPolls        int
	fail                   []ExecutionError
	pkg                    Package
}

// ExecutionState is a package export as tests see it.
type ExecutionState struct {
	ID              string `json:"id"`
	DefinitionGroup string `json:"definition_group"`
	Polls           int    `json:"polls"`
	Status          string `json:"status"`
}

// FailGroup makes every export of definition group fail with errs.
func (s *Server) FailGroup(group string, errs ...ExecutionError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failGroups[group] = errs
}

// Executions lists every export ever started.
func (s *Server) Executions() []ExecutionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ExecutionState, 0, len(s.executions))
	for _, e := range s.executions {
		out = append(out, ExecutionState{ID: e.id, DefinitionGroup: e.group, Polls: e.polls, Status: s.status(e)})
	}
	return out
}

// ExportedPackage returns the package an execution produced.
func (s *Server) ExportedPackage(executionID string) (Package, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.executions[executionID]
	if !ok {
		return Package{}, false
	}
	return e.pkg, true
}

func (s *Server) status(e *execution) string {
	switch {
	case e.polls <= 1:
		return "NotRun"
	case e.polls <= s.cfg.ExportPolls:
		return "Executing"
	case e.fail != nil:
		return "Failed"
	default:
		return "Succeeded"
	}
}

const actionPrefix = "Microsoft.Dynamics.DataEntities."

func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	action, ok := strings.CutPrefix(r.PathValue("action"), actionPrefix)
	if !ok {
		writeODataError(w, http.StatusNotFound, "Resource not found for the segment '"+r.PathValue("action")+"'.")
		return
	}
	var p map[string]any
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		writeODataError(w, http.StatusBadRequest, "The request body is not valid JSON: "+err.Error())
		return
	}
	str := func(k string) string { v, _ := p[k].(string); return v }
	s.mu.Lock()
	defer s.mu.Unlock()
	switch action {
	case "ExportToPackage":
		group := str("definitionGroupId")
		if group == "" {
			writeODataError(w, http.StatusBadRequest, "Exception occurred while executing action ExportToPackage on Entity DataManagementDefinitionGroup: Export to package failed for definition group: definitionGroupId is empty")
			return
		}
		id := str("executionId")
		if id == "" {
			id = fmt.Sprintf("%s-%s", group, s.nextID())
		}
		if _, exists := s.executions[id]; !exists { // the same executionId twice is the same export
			s.seq++
			s.executions[id] = &execution{id: id, group: group, legalEntity: str("legalEntityId"),
				fail: s.failGroups[group], pkg: SamplePackage(group, s.cfg.Rows, s.seq)}
		}
		s.writeValue(w, r, id, true)
	case "GetExecutionSummaryStatus":
		e, ok := s.executions[str("executionId")]
		if !ok {
			// Live systems answer 400 until the execution record exists.
			writeODataError(w, http.StatusBadRequest, "DMFExecution records for execution id '"+str("executionId")+"' were not found.")
			return
		}
		e.polls++
		s.writeValue(w, r, s.status(e), false)
	case "GetExportedPackageUrl":
		e, ok := s.executions[str("executionId")]
		if !ok || s.status(e) != "Succeeded" {
			s.writeValue(w, r, "", true)
			return
		}
		if e.urlPolls < s.cfg.EmptyURLPolls {
			e.urlPolls++
			s.writeValue(w, r, "", true)
			return
		}
		name := e.id + ".zip"
		s.blobs[name] = e.pkg.Zip()
		s.writeValue(w, r, s.sasURL(r, name), true)
	case "GetExecutionErrors":
		e, ok := s.executions[str("executionId")]
		if !ok {
			writeODataError(w, http.StatusBadRequest, "DMFExecution records for execution id '"+str("executionId")+"' were not found.")
			return
		}
		errs := e.fail
		if errs == nil {
			errs = []ExecutionError{}
		}
		b, _ := json.Marshal(errs)
		s.writeValue(w, r, string(b), false) // a JSON string holding JSON, as FinOps does
	case "GetMessageStatus":
		m := s.findMessageAny(str("messageId"))
		switch {
		case m == nil:
			writeODataError(w, http.StatusBadRequest, "Message '"+str("messageId")+"' was not found.")
		case m.acked:
			s.writeValue(w, r, "Acked", false)
		default:
			s.writeValue(w, r, "Dequeued", false)
		}
	case "GetExecutionIdByMessageId":
		s.writeValue(w, r, "00000000-0000-0000-0000-000000000000", false)
	default:
		writeODataError(w, http.StatusNotFound, "Action "+action+" is not simulated.")
	}
}

func (s *Server) findMessageAny(id string) *message {
	for _, q := range s.queues {
		for _, m := range q {
			if m.correlationID == id {
				return m
			}
		}
	}
	return nil
}

func (s *Server) writeValue(w http.ResponseWriter, r *http.Request, v string, nestable bool) {
	ctx := baseURL(r) + "/data/$metadata#Edm.String"
	if nestable && s.cfg.NestedValue {
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": map[string]any{"value": v}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": v})
}

func (s *Server) sasURL(r *http.Request, name string) string {
	now := s.now().UTC()
	exp := now.Add(s.cfg.SASTTL)
	q := url.Values{"sv": {"2014-02-14"}, "sr": {"b"}, "sp": {"r"},
		"st": {now.Add(-5 * time.Minute).Format(time.RFC3339)}, "se": {exp.Format(time.RFC3339)},
		"sig": {s.sign(name, exp.Unix())}}
	return baseURL(r) + "/blob/dmf/" + url.PathEscape(name) + "?" + q.Encode()
}

// handleBlob serves a SAS URL as Azure Blob Storage does: the signature is
// the credential, and a request that also carries a bearer token is refused.
func (s *Server) handleBlob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if r.Header.Get("Authorization") != "" {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidAuthenticationInfo</Code><Message>Authentication information is not given in the correct format. Check the value of Authorization header.</Message></Error>`)
		return
	}
	q := r.URL.Query()
	exp, err := time.Parse(time.RFC3339, q.Get("se"))
	if err != nil || !hmacEqual(q.Get("sig"), s.sign(name, exp.Unix())) {
		blobError(w, http.StatusForbidden, "AuthenticationFailed", "Signature did not match.")
		return
	}
	if !s.now().Before(exp) {
		blobError(w, http.StatusForbidden, "AuthenticationFailed", "Signed expiry time ["+exp.Format(time.RFC1123)+"] must be after signed start time.")
		return
	}
	s.mu.Lock()
	data, ok := s.blobs[name]
	s.mu.Unlock()
	if !ok {
		blobError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

func blobError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

func hmacEqual(a, b string) bool {
	return len(a) == len(b) && subtleEq([]byte(a), []byte(b))
}

func (s *Server) handleSimState(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	queues := map[string][]MessageState{}
	for a, q := range s.queues {
		for _, m := range q {
			queues[a] = append(queues[a], MessageState{CorrelationID: m.correlationID, Blob: m.blob, Dequeues: m.dequeues, Acked: m.acked})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"queues": queues, "executions": s.Executions()})
}
