package files

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Artifacts is the part of the store the handler reads.
type Artifacts interface {
	Artifact(ctx context.Context, id string) (*store.Artifact, error)
}

// Handler serves GET /files/{id}/{name}.
type Handler struct {
	signer    *Signer
	arts      Artifacts
	storage   Storage
	maxRanges int
	now       func() time.Time
	log       zerolog.Logger
}

// NewHandler returns the download handler; a request for more than
// maxRanges byte ranges gets the whole file.
func NewHandler(signer *Signer, arts Artifacts, storage Storage, maxRanges int, log zerolog.Logger) *Handler {
	return &Handler{signer: signer, arts: arts, storage: storage, maxRanges: maxRanges, now: time.Now, log: log.With().Str("component", "files").Logger()}
}

// WithClock sets the clock (tests).
func (h *Handler) WithClock(now func() time.Time) *Handler { h.now = now; return h }

// Pattern is the route the handler expects.
const Pattern = "GET /files/{id}/{name}"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	q := r.URL.Query()
	switch err := h.signer.Verify(id, name, q.Get("expires"), q.Get("signature"), h.now()); {
	case errors.Is(err, ErrBadSignature):
		http.Error(w, "invalid signature", http.StatusForbidden)
		return
	case errors.Is(err, ErrExpired):
		http.Error(w, "this link has expired; ask for a fresh one", http.StatusGone)
		return
	}
	a, err := h.arts.Artifact(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (a.Name != name || !a.DeletedAt.IsZero())) {
		http.Error(w, "file not found (it may be past retention)", http.StatusNotFound)
		return
	}
	if err != nil {
		h.log.Error().Err(err).Str("artifact_id", id).Msg("artifact lookup failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	f, err := h.storage.Open(r.Context(), a.Key)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			h.log.Error().Err(err).Str("artifact_id", id).Msg("opening artifact failed")
		}
		http.Error(w, "file not found (it may be past retention)", http.StatusNotFound)
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", a.ContentType)
	if a.ContentEncoding != "" {
		hd.Set("Content-Encoding", a.ContentEncoding)
	}
	hd.Set("ETag", `"`+a.SHA256+`"`)
	hd.Set("Cache-Control", "private, no-transform")
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Name}))
	hd.Set("X-Content-SHA256", a.SHA256)
	hd.Set("X-Record-Count", fmt.Sprint(a.Records))
	// Many small ranges make a multipart answer far larger than the file
	// (each part has its own headers); RFC 9110 lets a server ignore such a
	// Range and send the whole representation.
	if rg := r.Header.Get("Range"); rg != "" && strings.Count(rg, ",")+1 > h.maxRanges {
		r.Header.Del("Range")
	}
	// ServeContent answers Range (206), If-None-Match and HEAD.
	http.ServeContent(w, r, "", f.Info().ModTime, f)
}
