package conf

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Decoder fills section structs from a nested map. Struct fields are matched
// by their `koanf` tag; a field tagged `secret:"true"` (string, []string or
// map[string]string) also accepts "env:NAME" values and a sibling
// "<key>_file" naming a file whose contents (trailing newline trimmed) are the
// value.
type Decoder struct {
	// LookupEnv resolves "env:NAME"; defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads "<key>_file" paths; defaults to os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

var durationType = reflect.TypeOf(time.Duration(0))

// Decode fills dst, which must be a pointer to a struct, from raw. Unknown
// keys, wrong types and unresolvable secrets are all reported; decoding goes
// on past each problem so the caller sees every one.
func (d Decoder) Decode(raw map[string]any, dst any) Problems {
	if d.LookupEnv == nil {
		d.LookupEnv = os.LookupEnv
	}
	if d.ReadFile == nil {
		d.ReadFile = os.ReadFile
	}
	var ps Problems
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("conf: Decode needs a pointer to a struct")
	}
	d.decodeStruct("", raw, v.Elem(), &ps)
	return ps
}

type fieldInfo struct {
	index  int
	secret bool
}

func fieldsOf(t reflect.Type) map[string]fieldInfo {
	out := make(map[string]fieldInfo, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("koanf")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = fieldInfo{index: i, secret: f.Tag.Get("secret") == "true"}
	}
	return out
}

func (d Decoder) decodeStruct(path string, raw map[string]any, v reflect.Value, ps *Problems) {
	fields := fieldsOf(v.Type())
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := Join(path, k)
		fi, ok := fields[k]
		if !ok {
			if base, isFile := strings.CutSuffix(k, "_file"); isFile {
				if bfi, ok := fields[base]; ok && bfi.secret {
					d.secretFile(Join(path, base), key, raw[k], v.Field(bfi.index), ps)
					continue
				}
			}
			ps.Add(key, "unknown key%s", suggest(k, fields))
			continue
		}
		d.decodeValue(key, raw[k], v.Field(fi.index), fi.secret, ps)
	}
}

// suggest names the closest known key, to turn a typo into a one-glance fix.
func suggest(k string, fields map[string]fieldInfo) string {
	best, bestDist := "", 3
	for name := range fields {
		if dist := editDistance(k, name); dist < bestDist || (dist == bestDist && name < best) {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d Decoder) secretFile(key, fileKey string, raw any, dst reflect.Value, ps *Problems) {
	p, ok := raw.(string)
	if !ok {
		ps.Add(fileKey, "expected a file path, got %s", describe(raw, false))
		return
	}
	if p == "" {
		return
	}
	b, err := d.ReadFile(p)
	if err != nil {
		// The path is not secret; the contents are, and are never printed.
		ps.Add(fileKey, "cannot read secret file: %v", err)
		return
	}
	val := strings.TrimRight(string(b), "\r\n")
	switch dst.Kind() {
	case reflect.String:
		dst.SetString(val)
	case reflect.Slice:
		dst.Set(reflect.ValueOf(strings.Fields(val)))
	default:
		ps.Add(fileKey, "%s_file is not supported for this key", key)
	}
}

func (d Decoder) resolveSecret(key, s string, ps *Problems) string {
	name, ok := strings.CutPrefix(s, "env:")
	if !ok {
		return s
	}
	if name == "" {
		ps.Add(key, `"env:" needs a variable name`)
		return ""
	}
	val, found := d.LookupEnv(name)
	if !found {
		ps.Add(key, "environment variable %s is not set", name)
		return ""
	}
	return val
}

func (d Decoder) decodeValue(key string, raw any, v reflect.Value, secret bool, ps *Problems) {
	t := v.Type()
	if t == durationType {
		dur, err := parseDuration(raw)
		if err != nil {
			ps.Add(key, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			ps.Add(key, "expected a string, got %s", describe(raw, secret))
			return
		}
		if secret {
			s = d.resolveSecret(key, s, ps)
		}
		v.SetString(s)
	case reflect.Bool:
		switch b := raw.(type) {
		case bool:
			v.SetBool(b)
		case string: // from the environment
			parsed, err := strconv.ParseBool(b)
			if err != nil {
				ps.Add(key, "expected true or false, got %q", b)
				return
			}
			v.SetBool(parsed)
		default:
			ps.Add(key, "expected true or false, got %s", describe(raw, secret))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := toInt(raw)
		if !ok {
			ps.Add(key, "expected a whole number, got %s", describe(raw, secret))
			return
		}
		v.SetInt(n)
	case reflect.Float64:
		switch f := raw.(type) {
		case float64:
			v.SetFloat(f)
		default:
			n, ok := toInt(raw)
			if !ok {
				ps.Add(key, "expected a number, got %s", describe(raw, secret))
				return
			}
			v.SetFloat(float64(n))
		}
	case reflect.Slice:
		d.decodeSlice(key, raw, v, secret, ps)
	case reflect.Map:
		d.decodeMap(key, raw, v, secret, ps)
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			ps.Add(key, "expected a table, got %s", describe(raw, secret))
			return
		}
		d.decodeStruct(key, m, v, ps)
	default:
		panic(fmt.Sprintf("conf: unsupported field type %s at %s", t, key))
	}
}

func (d Decoder) decodeSlice(key string, raw any, v reflect.Value, secret bool, ps *Problems) {
	var items []any
	switch r := raw.(type) {
	case []any:
		items = r
	case []map[string]any:
		for _, m := range r {
			items = append(items, m)
		}
	case string:
		// A single string where a list is expected: from the environment
		// (comma-separated) or a one-element shorthand ("secret = 'whsec_…'").
		for _, part := range strings.Split(r, ",") {
			if part = strings.TrimSpace(part); part != "" {
				items = append(items, part)
			}
		}
	default:
		ps.Add(key, "expected a list, got %s", describe(raw, secret))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		d.decodeValue(fmt.Sprintf("%s[%d]", key, i), item, out.Index(i), secret, ps)
	}
	v.Set(out)
}

func (d Decoder) decodeMap(key string, raw any, v reflect.Value, secret bool, ps *Problems) {
	m, ok := raw.(map[string]any)
	if !ok {
		ps.Add(key, "expected a table, got %s", describe(raw, secret))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		panic("conf: map keys must be strings")
	}
	out := reflect.MakeMapWithSize(v.Type(), len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decodeValue(Join(key, k), m[k], elem, secret, ps)
		out.SetMapIndex(reflect.ValueOf(k), elem)
	}
	v.Set(out)
}

func parseDuration(raw any) (time.Duration, error) {
	switch r := raw.(type) {
	case string:
		dur, err := time.ParseDuration(r)
		if err != nil {
			return 0, fmt.Errorf(`invalid duration %q (use Go durations such as "90s", "5m", "1h30m")`, r)
		}
		return dur, nil
	case time.Duration:
		return r, nil
	default:
		return 0, fmt.Errorf(`expected a duration string such as "90s", got %s`, describe(raw, false))
	}
}

func toInt(raw any) (int64, bool) {
	switch n := raw.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// describe names a value's kind for an error, and the value itself unless
// it is a secret's: check-config output is pasted into tickets and chats.
func describe(v any, secret bool) string {
	if secret {
		switch v.(type) {
		case nil:
			return "nothing"
		case string:
			return "a string (value not shown: secret key)"
		case bool:
			return "a boolean (value not shown: secret key)"
		case int64, int, float64:
			return "a number (value not shown: secret key)"
		}
	}
	switch v := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case int64, int, float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
