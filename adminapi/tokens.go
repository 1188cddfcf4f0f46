package adminapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// TokenStore keeps the tokens created through the API (hashed).
type TokenStore interface {
	CreateToken(ctx context.Context, t store.StoredToken) error
	DeleteToken(ctx context.Context, name string) error
	Tokens(ctx context.Context) ([]store.StoredToken, error)
}

// TokenView is a token as /api/tokens lists it: never its value, except in
// the answer to the POST that created it.
type TokenView struct {
	Name      string     `json:"name"`
	Origin    string     `json:"origin"`
	Scopes    []string   `json:"scopes"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	Token     string     `json:"token,omitempty"`
}

func (a *API) tokenRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/tokens", a.admin(a.listTokens))
	mux.HandleFunc("POST /api/tokens", a.admin(a.createToken))
	mux.HandleFunc("DELETE /api/tokens/{name}", a.admin(a.deleteToken))
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	out := []TokenView{}
	for _, t := range a.ConfigTokens {
		out = append(out, TokenView{Name: t.Name, Origin: OriginConfig, Scopes: t.Scopes})
	}
	stored, err := a.StoredTokens.Tokens(r.Context())
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	for _, t := range stored {
		out = append(out, TokenView{Name: t.Name, Origin: OriginAPI, Scopes: t.Scopes, CreatedBy: t.CreatedBy, CreatedAt: &t.CreatedAt})
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *API) configToken(name string) bool {
	for _, t := range a.ConfigTokens {
		if t.Name == name {
			return true
		}
	}
	return false
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	if !publish.ValidName(req.Name) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("name: %q may contain only letters, digits, '-', '_' and '.'", req.Name))
		return
	}
	if err := access.ValidateScopes(req.Scopes); err != nil {
		apiError(w, http.StatusBadRequest, "scopes: "+err.Error())
		return
	}
	if a.configToken(req.Name) {
		apiError(w, http.StatusConflict, fmt.Sprintf("token %q is defined in config.toml", req.Name))
		return
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	tok := "ebt_" + base64.RawURLEncoding.EncodeToString(raw)
	h := access.Hash(tok)
	now := time.Now().UTC()
	p := Principal(r)
	err := a.StoredTokens.CreateToken(r.Context(), store.StoredToken{Name: req.Name, Hash: h[:], Scopes: req.Scopes, CreatedBy: p.Name, CreatedAt: now})
	switch {
	case errors.Is(err, store.ErrExists):
		apiError(w, http.StatusConflict, fmt.Sprintf("token %q exists", req.Name))
		return
	case err != nil:
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.Log.Info().Str("token", p.Name).Str("created_token", req.Name).Strs("scopes", req.Scopes).Msg("API token created")
	WriteJSON(w, http.StatusCreated, TokenView{Name: req.Name, Origin: OriginAPI, Scopes: req.Scopes, CreatedBy: p.Name, CreatedAt: &now, Token: tok})
}

func (a *API) deleteToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if a.configToken(name) {
		apiError(w, http.StatusConflict, fmt.Sprintf("token %q is defined in config.toml: remove it there", name))
		return
	}
	err := a.StoredTokens.DeleteToken(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		apiError(w, http.StatusNotFound, "no such token")
		return
	case err != nil:
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "deleted", "token": name})
}
