package conf

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	Key  string // dotted path, e.g. "jobs[1].schedule"
	Line int    // 1-based line in the file; 0 when unknown (default or env)
	// Env names the environment variable the value came from, when one
	// overrode the file: the problem is there, not on a line.
	Env string
	Msg string
}

func (p Problem) String() string {
	if p.Env != "" {
		return fmt.Sprintf("%s (environment variable %s): %s", p.Key, p.Env, p.Msg)
	}
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	if p.Key == "" {
		return p.Msg
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Msg)
}

// Problems is a list of configuration problems; it is an error when non-empty.
type Problems []Problem

// Add appends a problem for key.
func (ps *Problems) Add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Merge appends other's problems with prefix joined in front of their keys.
func (ps *Problems) Merge(prefix string, other Problems) {
	for _, p := range other {
		p.Key = Join(prefix, p.Key)
		*ps = append(*ps, p)
	}
}

// Err returns nil when there are no problems, so callers can write
// `return ps.Err()` without returning a typed nil.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Locate fills in Line for each problem using lines (a key → line lookup)
// and sorts the problems by line, then key, so output follows the file.
func (ps Problems) Locate(lines func(key string) int) {
	if lines != nil {
		for i := range ps {
			if ps[i].Line == 0 && ps[i].Key != "" {
				ps[i].Line = lines(ps[i].Key)
			}
		}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 {
			li = 1 << 30
		}
		if lj == 0 {
			lj = 1 << 30
		}
		if li != lj {
			return li < lj
		}
		return ps[i].Key < ps[j].Key
	})
}

// Join joins key path segments; index segments ("[2]") attach without a dot.
func Join(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	case strings.HasPrefix(key, "["):
		return prefix + key
	default:
		return prefix + "." + key
	}
}
