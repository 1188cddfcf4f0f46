package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/store"
)

// pageSize is how many deliveries a page lists.
const pageSize = 50

// deliveryStates are the states the page counts and filters by.
var deliveryStates = []string{store.StatePending, store.StateInFlight, store.StateDelivered, store.StateDead, store.StateSuperseded}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	var st adminapi.StatusView
	if ans := c.call(r, s, http.MethodGet, "/api/status", nil, nil, &st); ans.failed() != "" {
		c.problem(w, r, s, http.StatusServiceUnavailable, ans.failed())
		return
	}
	var attention []adminapi.SubscriptionRow
	for _, sub := range st.Subscriptions {
		if sub.State != adminapi.StateActive {
			attention = append(attention, sub)
		}
	}
	checks := make([]string, 0, len(st.Checks))
	for k := range st.Checks {
		checks = append(checks, k)
	}
	slices.Sort(checks)
	c.render(w, r, s, http.StatusOK, "overview", map[string]any{"Status": st, "Attention": attention, "CheckNames": checks,
		"States": deliveryStates})
}

func (c *Console) runJob(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	ans := c.call(r, s, http.MethodPost, "/api/jobs/"+url.PathEscape(name)+"/run", nil, nil, nil)
	if msg := ans.failed(); msg != "" {
		c.flash(w, "Run now: "+name+": "+msg)
	} else {
		c.flash(w, name+": started")
	}
	seeOther(w, r, "/")
}

// filterKeys are the delivery filters the page passes to the API.
var filterKeys = []string{"state", "subscription", "job", "entity", "since", "until"}

// filterQuery reads the page's delivery filter: the API's parameters, a
// time also as the browser's datetime-local (taken as UTC).
func filterQuery(form url.Values) url.Values {
	q := url.Values{}
	for _, k := range filterKeys {
		v := strings.TrimSpace(form.Get(k))
		if v == "" {
			continue
		}
		if k == "since" || k == "until" {
			if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
				v = t.UTC().Format(time.RFC3339)
			}
		}
		q.Set(k, v)
	}
	return q
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, s *session) {
	q := filterQuery(r.URL.Query())
	api := url.Values{}
	for k, v := range q {
		api[k] = v
	}
	api.Set("limit", strconv.Itoa(pageSize))
	if b := r.URL.Query().Get("before"); b != "" {
		api.Set("before", b)
	}
	var ds []adminapi.DeliveryView
	errMsg := c.call(r, s, http.MethodGet, "/api/deliveries", api, nil, &ds).failed()
	var st adminapi.StatusView
	c.call(r, s, http.MethodGet, "/api/status", nil, nil, &st) // names for the filter's choices; the list stands without them
	next := ""
	if len(ds) == pageSize {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("before", strconv.FormatInt(ds[len(ds)-1].ID, 10))
		next = "/deliveries?" + nq.Encode()
	}
	status := http.StatusOK
	if errMsg != "" {
		status = http.StatusBadRequest
	}
	replayable := q.Get("state") == store.StateDead || q.Get("state") == store.StateDelivered
	c.render(w, r, s, status, "deliveries", map[string]any{"Deliveries": ds, "Error": errMsg, "Filter": q, "Next": next,
		"Query": q.Encode(), "Replayable": replayable, "Status": st,
		"States": deliveryStates})
}

func (c *Console) delivery(w http.ResponseWriter, r *http.Request, s *session) {
	var d adminapi.DeliveryDetail
	ans := c.call(r, s, http.MethodGet, "/api/deliveries/"+url.PathEscape(r.PathValue("id")), nil, nil, &d)
	if msg := ans.failed(); msg != "" {
		c.problem(w, r, s, ans.status, msg)
		return
	}
	c.render(w, r, s, http.StatusOK, "delivery", map[string]any{"D": d,
		"Replayable": d.State == store.StateDead || d.State == store.StateDelivered})
}

func (c *Console) replayOne(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var res map[string]int
	if msg := c.call(r, s, http.MethodPost, "/api/deliveries/"+url.PathEscape(id)+"/replay", nil, nil, &res).failed(); msg != "" {
		c.flash(w, "Replay: "+msg)
	} else {
		c.flash(w, "Delivery "+id+" queued again: it goes out within a second")
	}
	seeOther(w, r, "/deliveries/"+url.PathEscape(id))
}

// confirmReplay says how many deliveries the filter selects and asks
// before replaying them.
func (c *Console) confirmReplay(w http.ResponseWriter, r *http.Request, s *session) {
	q := filterQuery(r.URL.Query())
	if q.Get("state") == "" {
		q.Set("state", store.StateDead)
	}
	var n map[string]int
	if msg := c.call(r, s, http.MethodGet, "/api/deliveries/count", q, nil, &n).failed(); msg != "" {
		c.problem(w, r, s, http.StatusBadRequest, msg)
		return
	}
	c.render(w, r, s, http.StatusOK, "replay", map[string]any{"Count": n["count"], "Filter": q, "Query": q.Encode()})
}

func (c *Console) replayMatching(w http.ResponseWriter, r *http.Request, s *session) {
	q := filterQuery(r.PostForm)
	if q.Get("state") == "" {
		q.Set("state", store.StateDead)
	}
	var res map[string]int
	if msg := c.call(r, s, http.MethodPost, "/api/deliveries/replay", q, nil, &res).failed(); msg != "" {
		c.flash(w, "Replay: "+msg)
	} else {
		c.flash(w, fmt.Sprintf("%d deliveries queued again", res["replayed"]))
	}
	back := url.Values{}
	for k, v := range q {
		back[k] = v
	}
	back.Del("state")
	seeOther(w, r, "/deliveries?"+back.Encode())
}

func (c *Console) subscriptionList(r *http.Request, s *session) ([]adminapi.SubscriptionView, string) {
	var subs []adminapi.SubscriptionView
	return subs, c.call(r, s, http.MethodGet, "/api/subscriptions", nil, nil, &subs).failed()
}

func (c *Console) subscriptions(w http.ResponseWriter, r *http.Request, s *session) {
	subs, msg := c.subscriptionList(r, s)
	c.render(w, r, s, http.StatusOK, "subscriptions", map[string]any{"Subscriptions": subs, "Error": msg})
}

// specFrom reads a subscription form into the API's JSON; empty fields are
// left out (on edit: unchanged).
func specFrom(form url.Values) (map[string]any, error) {
	spec := map[string]any{}
	if v := strings.TrimSpace(form.Get("url")); v != "" {
		spec["url"] = v
	}
	for _, k := range []string{"topics", "entities"} {
		if v := strings.TrimSpace(form.Get(k)); v != "" {
			var list []string
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					list = append(list, t)
				}
			}
			spec[k] = list
		}
	}
	if form.Has("filter") {
		spec["filter"] = strings.TrimSpace(form.Get("filter"))
	}
	if v := strings.TrimSpace(form.Get("timeout")); v != "" {
		spec["timeout"] = v
	}
	if v := strings.TrimSpace(form.Get("max_per_second")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("max per second: %q is not a number", v)
		}
		spec["max_per_second"] = f
	}
	return spec, nil
}

func (c *Console) createSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	spec, err := specFrom(r.PostForm)
	if err == nil {
		spec["name"] = strings.TrimSpace(r.PostFormValue("name"))
		var created adminapi.SubscriptionView
		ans := c.call(r, s, http.MethodPost, "/api/subscriptions", nil, spec, &created)
		if msg := ans.failed(); msg != "" {
			err = fmt.Errorf("%s", msg)
		} else {
			subs, msg := c.subscriptionList(r, s)
			// The generated secret is shown here, once: no redirect keeps it.
			c.render(w, r, s, http.StatusCreated, "subscriptions", map[string]any{"Subscriptions": subs, "Error": msg, "Created": created})
			return
		}
	}
	subs, _ := c.subscriptionList(r, s)
	c.render(w, r, s, http.StatusBadRequest, "subscriptions", map[string]any{"Subscriptions": subs, "FormError": err.Error(), "Form": r.PostForm})
}

// runtimeSubscription reads the subscription the path names, answering
// with a problem page (and false) when there is none or config.toml
// defines it.
func (c *Console) runtimeSubscription(w http.ResponseWriter, r *http.Request, s *session) (adminapi.SubscriptionView, bool) {
	var sub adminapi.SubscriptionView
	ans := c.call(r, s, http.MethodGet, "/api/subscriptions/"+url.PathEscape(r.PathValue("name")), nil, nil, &sub)
	if msg := ans.failed(); msg != "" {
		c.problem(w, r, s, ans.status, msg)
		return sub, false
	}
	if sub.Origin == adminapi.OriginConfig {
		c.problem(w, r, s, http.StatusConflict, fmt.Sprintf("subscription %q is defined in config.toml: change it there", sub.Name))
		return sub, false
	}
	return sub, true
}

func (c *Console) editSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	if sub, ok := c.runtimeSubscription(w, r, s); ok {
		c.render(w, r, s, http.StatusOK, "subscription", map[string]any{"Sub": sub})
	}
}

// confirmDelete asks before a runtime subscription goes, saying how many
// of its deliveries still wait: they stay in the store, and a
// subscription created again under the name sends them.
func (c *Console) confirmDelete(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := c.runtimeSubscription(w, r, s)
	if !ok {
		return
	}
	var n map[string]int
	q := url.Values{"subscription": {sub.Name}, "state": {store.StatePending}}
	if msg := c.call(r, s, http.MethodGet, "/api/deliveries/count", q, nil, &n).failed(); msg != "" {
		c.problem(w, r, s, http.StatusServiceUnavailable, msg)
		return
	}
	c.render(w, r, s, http.StatusOK, "delete", map[string]any{"Sub": sub, "Waiting": n["count"]})
}

func (c *Console) deleteSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if msg := c.call(r, s, http.MethodDelete, "/api/subscriptions/"+url.PathEscape(name), nil, nil, nil).failed(); msg != "" {
		c.flash(w, name+": "+msg)
	} else {
		c.flash(w, name+": deleted")
	}
	seeOther(w, r, "/subscriptions")
}

func (c *Console) updateSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	spec, err := specFrom(r.PostForm)
	if err == nil {
		var updated adminapi.SubscriptionView
		if msg := c.call(r, s, http.MethodPatch, "/api/subscriptions/"+url.PathEscape(name), nil, spec, &updated).failed(); msg != "" {
			err = fmt.Errorf("%s", msg)
		}
	}
	if err != nil {
		var sub adminapi.SubscriptionView
		c.call(r, s, http.MethodGet, "/api/subscriptions/"+url.PathEscape(name), nil, nil, &sub)
		c.render(w, r, s, http.StatusBadRequest, "subscription", map[string]any{"Sub": sub, "FormError": err.Error()})
		return
	}
	c.flash(w, name+": saved")
	seeOther(w, r, "/subscriptions")
}

func (c *Console) pauseOrResume(w http.ResponseWriter, r *http.Request, s *session) {
	name, verb := r.PathValue("name"), r.PathValue("verb")
	if verb != "pause" && verb != "resume" {
		c.problem(w, r, s, http.StatusNotFound, "no such action: "+verb)
		return
	}
	if msg := c.call(r, s, http.MethodPost, "/api/subscriptions/"+url.PathEscape(name)+"/"+verb, nil, nil, nil).failed(); msg != "" {
		c.flash(w, name+": "+msg)
	} else {
		c.flash(w, name+": "+verb+"d")
	}
	seeOther(w, r, "/subscriptions")
}

func (c *Console) live(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, http.StatusOK, "live", map[string]any{"Available": c.stream != nil})
}

// liveEvents is the hub's SSE stream of every topic, for a session that
// may read: what read tokens see through the deliveries' event bodies
// anyway.
func (c *Console) liveEvents(w http.ResponseWriter, r *http.Request, s *session) {
	if c.stream == nil {
		http.Error(w, "no live view in this process", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	q.Del("topics")
	r.URL.RawQuery = q.Encode()
	reader := access.NewPrincipal(s.p.Name, []string{access.ScopeSubscribe + ":*"})
	c.stream.ServeHTTP(w, access.WithPrincipal(r, reader))
}
