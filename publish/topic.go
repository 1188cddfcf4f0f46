// Package publish turns committed export results into business events and
// delivers them to subscribed HTTP targets: the event envelope, topic
// matching, Standard Webhooks signing and CloudEvents headers, delivery
// workers with a stored retry state, dead letters and replay.
//
// publish knows nothing of FinOps: it sees jobs, entities and files.
package publish

import (
	"errors"
	"strconv"
	"strings"
)

var errSecretFormat = errors.New(`must be a Standard Webhooks secret: "whsec_" followed by base64 of at least 16 bytes`)

func itoa(i int) string { return strconv.Itoa(i) }

// validPattern checks a topic pattern: "/"-separated non-empty segments.
func validPattern(p string) error {
	if p == "" {
		return errors.New("topic pattern must not be empty")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return errors.New("topic pattern " + strconv.Quote(p) + " has an empty segment")
		}
	}
	return nil
}

// MatchTopic reports whether topic is matched by pattern. A pattern matches
// a topic when each of its segments equals the topic's segment at the same
// place or is "*", and the topic has at least as many segments: so
// "dataexport" matches everything below it, and "dataexport/*/failed"
// matches every job's failures.
func MatchTopic(pattern, topic string) bool {
	ps, ts := strings.Split(pattern, "/"), strings.Split(topic, "/")
	if len(ps) > len(ts) {
		return false
	}
	for i, p := range ps {
		if p != "*" && p != ts[i] {
			return false
		}
	}
	return true
}
