package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// Subscription origins.
const (
	OriginConfig = "config" // config.toml: read-only through the API
	OriginAPI    = "api"
)

// SubscriptionView is a subscription as /api/subscriptions answers it.
// Secrets never appear; header values neither (only names).
type SubscriptionView struct {
	Name         string   `json:"name"`
	Origin       string   `json:"origin"`
	URL          string   `json:"url"`
	Topics       []string `json:"topics"`
	Entities     []string `json:"entities"`
	Headers      []string `json:"headers"`
	Timeout      string   `json:"timeout"`
	Retry        []string `json:"retry"`
	SuccessBody  string   `json:"success_body,omitempty"`
	MaxInFlight  int      `json:"max_in_flight"`
	Filter       string   `json:"filter,omitempty"`
	MaxPerSecond float64  `json:"max_per_second,omitempty"`
	Supersede    bool     `json:"supersede,omitempty"`
	Signed       bool     `json:"signed"`
	Paused       bool     `json:"paused"`
	PausedReason string   `json:"paused_reason,omitempty"`
	// Circuit is this process's circuit breaker for the target.
	Circuit   publish.BreakerState `json:"circuit"`
	CreatedBy string               `json:"created_by,omitempty"`
	CreatedAt *time.Time           `json:"created_at,omitempty"`
	UpdatedAt *time.Time           `json:"updated_at,omitempty"`
	// Secret is shown once: in the answer to the POST that generated it.
	Secret string `json:"secret,omitempty"`
}

func (a *API) subscriptionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/subscriptions", a.listSubscriptions)
	mux.HandleFunc("POST /api/subscriptions", a.createSubscription)
	mux.HandleFunc("GET /api/subscriptions/{name}", a.getSubscription)
	mux.HandleFunc("PATCH /api/subscriptions/{name}", a.patchSubscription)
	mux.HandleFunc("DELETE /api/subscriptions/{name}", a.deleteSubscription)
	mux.HandleFunc("POST /api/subscriptions/{name}/pause", a.pauseSubscription)
	mux.HandleFunc("POST /api/subscriptions/{name}/resume", a.resumeSubscription)
}

// mayManage: admin, or subscribe scopes covering every topic.
func mayManage(p *access.Principal, topics []string) (bool, string) {
	if p.Admin() {
		return true, ""
	}
	for _, t := range topics {
		if !p.CanSubscribe(t) {
			return false, access.MissingScope(access.ScopeSubscribe, t)
		}
	}
	return len(topics) > 0, access.ScopeAdmin
}

// mayRead: read, admin, or a subscribe scope over its topics.
func mayRead(p *access.Principal, s *publish.Subscription) bool {
	if p.CanRead() {
		return true
	}
	ok, _ := mayManage(p, s.Topics)
	return ok
}

func (a *API) view(s *publish.Subscription, stored map[string]store.StoredSubscription, paused map[string]string, circuits map[string]publish.BreakerState) SubscriptionView {
	v := SubscriptionView{Name: s.Name, Origin: OriginAPI, URL: redact.URL(s.URL), Topics: s.Topics, Entities: append([]string{}, s.Entities...),
		Headers: []string{}, Timeout: s.Timeout.String(), Retry: []string{}, SuccessBody: s.SuccessBody, MaxInFlight: s.MaxInFlight,
		Filter: s.Filter, MaxPerSecond: s.MaxPerSecond, Supersede: s.Supersede, Signed: len(s.Secret) > 0, Circuit: circuits[s.Name]}
	for k := range s.Headers {
		v.Headers = append(v.Headers, k)
	}
	for _, d := range s.Retry {
		v.Retry = append(v.Retry, d.String())
	}
	v.PausedReason, v.Paused = paused[s.Name]
	if a.Configured(s.Name) {
		v.Origin = OriginConfig
	}
	if st, ok := stored[s.Name]; ok {
		v.CreatedBy, v.CreatedAt, v.UpdatedAt = st.CreatedBy, &st.CreatedAt, &st.UpdatedAt
	}
	return v
}

func (a *API) storedByName(r *http.Request) (map[string]store.StoredSubscription, error) {
	subs, _, err := a.Stored.StoredSubscriptions(r.Context())
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.StoredSubscription, len(subs))
	for _, s := range subs {
		out[s.Name] = s
	}
	return out, nil
}

func (a *API) find(name string) *publish.Subscription {
	for _, s := range a.Subscriptions.Subscriptions() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// viewer returns a function that views subscriptions with what the store
// says of them now (pauses, who created them), answering 503 itself when
// the store cannot say.
func (a *API) viewer(w http.ResponseWriter, r *http.Request) (func(*publish.Subscription) SubscriptionView, bool) {
	paused, err := a.Store.Paused(r.Context())
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return nil, false
	}
	stored, err := a.storedByName(r)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return nil, false
	}
	circuits := a.Publisher.Circuits()
	return func(s *publish.Subscription) SubscriptionView { return a.view(s, stored, paused, circuits) }, true
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	p := Principal(r)
	view, ok := a.viewer(w, r)
	if !ok {
		return
	}
	out := []SubscriptionView{}
	for _, s := range a.Subscriptions.Subscriptions() {
		if mayRead(p, s) {
			out = append(out, view(s))
		}
	}
	if len(out) == 0 && !p.CanRead() && len(p.SubscribePatterns()) == 0 {
		forbid(w, p, access.ScopeRead)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request) {
	s := a.find(r.PathValue("name"))
	if s == nil {
		apiError(w, http.StatusNotFound, "no such subscription")
		return
	}
	if p := Principal(r); !mayRead(p, s) {
		forbid(w, p, access.ScopeRead)
		return
	}
	a.writeView(w, r, s, http.StatusOK, "")
}

func (a *API) writeView(w http.ResponseWriter, r *http.Request, s *publish.Subscription, status int, secret string) {
	view, ok := a.viewer(w, r)
	if !ok {
		return
	}
	v := view(s)
	v.Secret = secret
	WriteJSON(w, status, v)
}

// decodeSpec reads a JSON body into spec (fields absent keep their value),
// naming the position of malformed JSON.
func decodeSpec(r *http.Request, spec *publish.SubscriptionSpec, name *string) error {
	body := http.MaxBytesReader(nil, r.Body, 64<<10)
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(body)
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	if v, ok := raw["name"]; ok && name != nil {
		if err := json.Unmarshal(v, name); err != nil {
			return fmt.Errorf("name: %v", err)
		}
	}
	delete(raw, "name")
	b, _ := json.Marshal(raw)
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(spec); err != nil {
		return err
	}
	return nil
}

// checkHost keeps runtime subscriptions to the allowed hosts.
func (a *API) checkHost(raw string) error {
	if len(a.SubscriptionHosts) == 0 {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := strings.ToLower(u.Hostname())
	hostPort := host
	if port := u.Port(); port != "" {
		hostPort = net.JoinHostPort(host, port)
	}
	for _, pat := range a.SubscriptionHosts {
		pat = strings.ToLower(pat)
		if ok, _ := path.Match(pat, host); ok {
			return nil
		}
		if ok, _ := path.Match(pat, hostPort); ok {
			return nil
		}
	}
	return fmt.Errorf("url: host %q is not in server.subscription_hosts", hostPort)
}

// build checks spec as the subscription name would run it.
func (a *API) build(name string, spec publish.SubscriptionSpec) (*publish.Subscription, error) {
	cfg, err := spec.Config(name)
	if err != nil {
		return nil, err
	}
	if err := a.checkHost(cfg.URL); err != nil {
		return nil, err
	}
	return publish.NewSubscription(cfg)
}

func (a *API) createSubscription(w http.ResponseWriter, r *http.Request) {
	p := Principal(r)
	var spec publish.SubscriptionSpec
	var name string
	if err := decodeSpec(r, &spec, &name); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(spec.Topics) == 0 {
		spec.Topics = publish.SubscriptionConfig{}.WithDefaults().Topics
	}
	if ok, missing := mayManage(p, spec.Topics); !ok {
		forbid(w, p, missing)
		return
	}
	if a.Configured(name) {
		apiError(w, http.StatusConflict, fmt.Sprintf("subscription %q is defined in config.toml", name))
		return
	}
	generated := ""
	if len(spec.Secret) == 0 {
		generated = publish.NewSecret()
		spec.Secret = []string{generated}
	}
	s, err := a.build(name, spec)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, _ := json.Marshal(spec)
	now := time.Now()
	err = a.Stored.CreateSubscription(r.Context(), store.StoredSubscription{Name: name, Spec: b, CreatedBy: p.Name, CreatedAt: now})
	switch {
	case errors.Is(err, store.ErrExists):
		apiError(w, http.StatusConflict, fmt.Sprintf("subscription %q exists", name))
		return
	case err != nil:
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.Reload(r.Context())
	a.Log.Info().Str("token", p.Name).Str("subscription", name).Msg("subscription created")
	a.writeView(w, r, s, http.StatusCreated, generated)
}

// runtime returns the stored subscription name, answering 404, 409 (config)
// or 403 itself when it may not be changed by the request's token.
func (a *API) runtime(w http.ResponseWriter, r *http.Request) (store.StoredSubscription, publish.SubscriptionSpec, bool) {
	name := r.PathValue("name")
	var spec publish.SubscriptionSpec
	if a.Configured(name) {
		// Permission first: a token that may not change it learns no more.
		if s := a.find(name); s != nil {
			if ok, missing := mayManage(Principal(r), s.Topics); !ok {
				forbid(w, Principal(r), missing)
				return store.StoredSubscription{}, spec, false
			}
		}
		apiError(w, http.StatusConflict, fmt.Sprintf("subscription %q is defined in config.toml: change it there", name))
		return store.StoredSubscription{}, spec, false
	}
	stored, err := a.storedByName(r)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return store.StoredSubscription{}, spec, false
	}
	st, ok := stored[name]
	if !ok {
		apiError(w, http.StatusNotFound, "no such subscription")
		return st, spec, false
	}
	if err := json.Unmarshal(st.Spec, &spec); err != nil {
		apiError(w, http.StatusInternalServerError, fmt.Sprintf("stored subscription %q: %v", name, err))
		return st, spec, false
	}
	p := Principal(r)
	if ok, missing := mayManage(p, spec.Topics); !ok {
		forbid(w, p, missing)
		return st, spec, false
	}
	return st, spec, true
}

func (a *API) patchSubscription(w http.ResponseWriter, r *http.Request) {
	st, spec, ok := a.runtime(w, r)
	if !ok {
		return
	}
	if err := decodeSpec(r, &spec, nil); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	p := Principal(r)
	if ok, missing := mayManage(p, spec.Topics); !ok {
		forbid(w, p, missing)
		return
	}
	s, err := a.build(st.Name, spec)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, _ := json.Marshal(spec)
	if err := a.Stored.UpdateSubscription(r.Context(), st.Name, b, time.Now()); err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.Reload(r.Context())
	a.writeView(w, r, s, http.StatusOK, "")
}

func (a *API) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	st, _, ok := a.runtime(w, r)
	if !ok {
		return
	}
	if err := a.Stored.DeleteSubscription(r.Context(), st.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.Reload(r.Context())
	WriteJSON(w, http.StatusOK, map[string]string{"status": "deleted", "subscription": st.Name})
}

// pausable finds name and checks the token may pause or resume it.
func (a *API) pausable(w http.ResponseWriter, r *http.Request) (string, bool) {
	s := a.find(r.PathValue("name"))
	if s == nil {
		apiError(w, http.StatusNotFound, "no such subscription")
		return "", false
	}
	p := Principal(r)
	if ok, missing := mayManage(p, s.Topics); !ok {
		forbid(w, p, missing)
		return "", false
	}
	return s.Name, true
}

func (a *API) pauseSubscription(w http.ResponseWriter, r *http.Request) {
	name, ok := a.pausable(w, r)
	if !ok {
		return
	}
	if err := a.Publisher.Pause(r.Context(), name, "paused by "+Principal(r).Name+" through the API"); err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "paused", "subscription": name})
}

func (a *API) resumeSubscription(w http.ResponseWriter, r *http.Request) {
	name, ok := a.pausable(w, r)
	if !ok {
		return
	}
	if err := a.Publisher.Resume(r.Context(), name); err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "resumed", "subscription": name})
}
