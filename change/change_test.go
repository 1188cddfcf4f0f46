package change

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// snapshot writes rows as the converter does: a JSON array, one per line.
func snapshot(rows ...string) string {
	if len(rows) == 0 {
		return "[\n]\n"
	}
	return "[\n" + strings.Join(rows, ",\n") + "\n]\n"
}

// change is one decoded line of Compare's output.
type change struct {
	Op     string         `json:"op"`
	Key    map[string]any `json:"key"`
	Row    map[string]any `json:"row,omitempty"`
	Before map[string]any `json:"before,omitempty"`
}

func decode(t testing.TB, out string) []change {
	t.Helper()
	var cs []change
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var c change
		require.NoError(t, json.Unmarshal([]byte(line), &c), "each line is JSON: %s", line)
		cs = append(cs, c)
	}
	return cs
}

func run(t testing.TB, before, after string, keys []string, chunk int) ([]change, Summary, error) {
	t.Helper()
	var out bytes.Buffer
	var b io.Reader // nil: no snapshot before
	if before != "" {
		b = strings.NewReader(before)
	}
	sum, err := Compare(context.Background(), b, strings.NewReader(after), &out, Options{Keys: keys, TempDir: t.TempDir(), ChunkBytes: chunk})
	if err != nil {
		return nil, sum, err
	}
	return decode(t, out.String()), sum, nil
}

func TestCompare(t *testing.T) {
	t.Parallel()
	id := []string{"Id"}
	tests := []struct {
		name          string
		before, after string
		keys          []string
		want          []change
	}{
		{"insert", snapshot(`{"Id":"1","Name":"a"}`), snapshot(`{"Id":"1","Name":"a"}`, `{"Id":"2","Name":"b"}`), id,
			[]change{{Op: "insert", Key: map[string]any{"Id": "2"}, Row: map[string]any{"Id": "2", "Name": "b"}}}},
		{"update of one field", snapshot(`{"Id":"1","Name":"a","City":"Oslo"}`), snapshot(`{"Id":"1","Name":"a","City":"Bergen"}`), id,
			[]change{{Op: "update", Key: map[string]any{"Id": "1"}, Row: map[string]any{"Id": "1", "Name": "a", "City": "Bergen"},
				Before: map[string]any{"City": "Oslo"}}}},
		{"delete", snapshot(`{"Id":"1"}`, `{"Id":"2"}`), snapshot(`{"Id":"2"}`), id,
			[]change{{Op: "delete", Key: map[string]any{"Id": "1"}, Before: map[string]any{"Id": "1"}}}},
		{"rows reordered, fields reordered: no change", snapshot(`{"Id":"1","A":1,"B":2}`, `{"Id":"2","A":3,"B":4}`),
			snapshot(`{"Id":"2","B":4,"A":3}`, `{"A":1,"Id":"1","B":2}`), id, nil},
		{"a field gained and one lost", snapshot(`{"Id":"1","Old":"x","Same":1}`), snapshot(`{"Id":"1","Same":1,"New":"y"}`), id,
			[]change{{Op: "update", Key: map[string]any{"Id": "1"}, Row: map[string]any{"Id": "1", "Same": 1.0, "New": "y"},
				Before: map[string]any{"New": nil, "Old": "x"}}}},
		{"keys of several columns", snapshot(`{"dataAreaId":"usmf","Acct":"1","V":1}`, `{"dataAreaId":"demf","Acct":"1","V":1}`),
			snapshot(`{"dataAreaId":"usmf","Acct":"1","V":2}`, `{"dataAreaId":"usmf","Acct":"2","V":1}`), []string{"dataAreaId", "Acct"},
			[]change{
				{Op: "delete", Key: map[string]any{"dataAreaId": "demf", "Acct": "1"}, Before: map[string]any{"dataAreaId": "demf", "Acct": "1", "V": 1.0}},
				{Op: "update", Key: map[string]any{"dataAreaId": "usmf", "Acct": "1"}, Row: map[string]any{"dataAreaId": "usmf", "Acct": "1", "V": 2.0}, Before: map[string]any{"V": 1.0}},
				{Op: "insert", Key: map[string]any{"dataAreaId": "usmf", "Acct": "2"}, Row: map[string]any{"dataAreaId": "usmf", "Acct": "2", "V": 1.0}},
			}},
		{"Unicode keys, escaped or not", snapshot(`{"Id":"München","V":1}`, `{"Id":"東京","V":1}`),
			snapshot(`{"Id":"M\u00fcnchen","V":1}`, `{"Id":"東京","V":2}`), id,
			[]change{{Op: "update", Key: map[string]any{"Id": "東京"}, Row: map[string]any{"Id": "東京", "V": 2.0}, Before: map[string]any{"V": 1.0}}}},
		{"the string 10 is not the number 10", snapshot(`{"Id":"10"}`), snapshot(`{"Id":10}`), id,
			[]change{{Op: "delete", Key: map[string]any{"Id": "10"}, Before: map[string]any{"Id": "10"}},
				{Op: "insert", Key: map[string]any{"Id": 10.0}, Row: map[string]any{"Id": 10.0}}}},
		{"empty before", snapshot(), snapshot(`{"Id":"1"}`), id,
			[]change{{Op: "insert", Key: map[string]any{"Id": "1"}, Row: map[string]any{"Id": "1"}}}},
		{"empty after", snapshot(`{"Id":"1"}`), snapshot(), id,
			[]change{{Op: "delete", Key: map[string]any{"Id": "1"}, Before: map[string]any{"Id": "1"}}}},
		{"both empty", snapshot(), snapshot(), id, nil},
		{"NDJSON", `{"Id":"1","V":1}` + "\n" + `{"Id":"2","V":1}` + "\n", `{"Id":"2","V":2}` + "\n", id,
			[]change{{Op: "delete", Key: map[string]any{"Id": "1"}, Before: map[string]any{"Id": "1", "V": 1.0}},
				{Op: "update", Key: map[string]any{"Id": "2"}, Row: map[string]any{"Id": "2", "V": 2.0}, Before: map[string]any{"V": 1.0}}}},
		{"nested values compared as written", snapshot(`{"Id":"1","Tags":["a","b"],"M":{"x":1}}`), snapshot(`{"Id":"1","Tags":["a","c"],"M":{"x":1}}`), id,
			[]change{{Op: "update", Key: map[string]any{"Id": "1"}, Row: map[string]any{"Id": "1", "Tags": []any{"a", "c"}, "M": map[string]any{"x": 1.0}},
				Before: map[string]any{"Tags": []any{"a", "b"}}}}},
	}
	for _, tc := range tests {
		for _, chunk := range []int{0, 1} { // in memory, and a chunk per row (spilled and merged)
			t.Run(fmt.Sprintf("%s/chunk=%d", tc.name, chunk), func(t *testing.T) {
				t.Parallel()
				got, sum, err := run(t, tc.before, tc.after, tc.keys, chunk)
				require.NoError(t, err)
				require.Equal(t, sorted(slices.Clone(tc.want)), sorted(got), "the changes, in any order")
				var ins, upd, del int64
				for _, c := range tc.want {
					switch c.Op {
					case "insert":
						ins++
					case "update":
						upd++
					case "delete":
						del++
					}
				}
				require.Equal(t, [3]int64{ins, upd, del}, [3]int64{sum.Inserted, sum.Updated, sum.Deleted})
			})
		}
	}
}

func TestBadSnapshotsAreNamed(t *testing.T) {
	t.Parallel()
	id := []string{"Id"}
	_, _, err := run(t, snapshot(`{"Id":"1"}`), snapshot(`{"Id":"7","V":1}`, `{"Id":"2"}`, `{"Id":"7","V":2}`), id, 1)
	var dup *DuplicateKeyError
	require.ErrorAs(t, err, &dup)
	require.ErrorIs(t, err, ErrBadSnapshot)
	require.Equal(t, "after", dup.Snapshot)
	require.Equal(t, `{"Id":"7"}`, dup.Key)
	require.Equal(t, [2]int64{2, 4}, dup.Lines, "the lines of both rows")
	require.Equal(t, `after snapshot: key {"Id":"7"} is on line 2 and on line 4`, err.Error())

	_, _, err = run(t, snapshot(`{"Id":"1"}`, `{"Name":"no id"}`), snapshot(), id, 0)
	var mk *MissingKeyError
	require.ErrorAs(t, err, &mk)
	require.Equal(t, MissingKeyError{Snapshot: "before", Column: "Id", Line: 3}, *mk)

	_, _, err = run(t, snapshot(), "[\n{\"Id\":\"1\"\n]\n", id, 0)
	var re *RowError
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, ErrBadSnapshot)
	require.Equal(t, int64(2), re.Line)
}

// reference is the difference computed naively, in memory, with
// encoding/json: what Compare must agree with.
func reference(before, after []map[string]any, keys []string) []change {
	keyOf := func(r map[string]any) string {
		b, _ := json.Marshal(pick(r, keys))
		return string(b)
	}
	old := map[string]map[string]any{}
	for _, r := range before {
		old[keyOf(r)] = r
	}
	var out []change
	seen := map[string]bool{}
	for _, r := range after {
		k := keyOf(r)
		seen[k] = true
		o, ok := old[k]
		if !ok {
			out = append(out, change{Op: "insert", Key: pick(r, keys), Row: r})
			continue
		}
		if reflect.DeepEqual(o, r) {
			continue
		}
		bf := map[string]any{}
		for f, v := range o {
			if nv, ok := r[f]; !ok || !reflect.DeepEqual(nv, v) {
				bf[f] = v
			}
		}
		for f := range r {
			if _, ok := o[f]; !ok {
				bf[f] = nil
			}
		}
		out = append(out, change{Op: "update", Key: pick(r, keys), Row: r, Before: bf})
	}
	for k, o := range old {
		if !seen[k] {
			out = append(out, change{Op: "delete", Key: pick(o, keys), Before: o})
		}
	}
	return out
}

func pick(r map[string]any, keys []string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		out[k] = r[k]
	}
	return out
}

func sorted(cs []change) []change {
	sort.Slice(cs, func(i, j int) bool {
		a, _ := json.Marshal(cs[i])
		b, _ := json.Marshal(cs[j])
		return string(a) < string(b)
	})
	return cs
}

func encodeRows(rows []map[string]any) string {
	var lines []string
	for _, r := range rows {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
	}
	return snapshot(lines...)
}

// TestCompareAgreesWithAReference: on random snapshots (rows added,
// changed, deleted, reordered; keys of one or two columns), Compare finds
// exactly what the naive in-memory difference finds, in memory and
// spilled to small chunks.
func TestCompareAgreesWithAReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	values := []any{"a", "b", "ü", "東", "x\"y", "", 1.0, 2.5, true, nil}
	for iter := range 150 {
		keys := []string{"K"}
		if iter%2 == 1 {
			keys = []string{"Area", "K"}
		}
		var before []map[string]any
		n := rng.IntN(30)
		for i := range n {
			r := map[string]any{"K": fmt.Sprintf("k%d", i), "F1": values[rng.IntN(len(values))], "F2": values[rng.IntN(len(values))]}
			if len(keys) == 2 {
				r["Area"] = []string{"usmf", "demf"}[rng.IntN(2)]
			}
			before = append(before, r)
		}
		var after []map[string]any
		for _, r := range before {
			switch rng.IntN(5) {
			case 0: // deleted
			case 1: // changed
				c := map[string]any{}
				for k, v := range r {
					c[k] = v
				}
				c["F1"] = values[rng.IntN(len(values))]
				if rng.IntN(3) == 0 {
					delete(c, "F2")
					c["F3"] = "new"
				}
				after = append(after, c)
			default:
				after = append(after, r)
			}
		}
		for i := range rng.IntN(5) {
			r := map[string]any{"K": fmt.Sprintf("new%d", i), "F1": values[rng.IntN(len(values))]}
			if len(keys) == 2 {
				r["Area"] = "usmf"
			}
			after = append(after, r)
		}
		rng.Shuffle(len(after), func(i, j int) { after[i], after[j] = after[j], after[i] })
		want := sorted(reference(before, after, keys))
		for _, chunk := range []int{0, 512} { // in memory; spilled every few rows
			got, _, err := run(t, encodeRows(before), encodeRows(after), keys, chunk)
			require.NoError(t, err)
			require.Equal(t, want, sorted(got), "iteration %d, chunk %d", iter, chunk)
		}
	}
}

// FuzzCompare: any pair of inputs gives changes that are each valid JSON,
// or an error; never a panic. FuzzScanObject checks the member scanner
// against encoding/json on what it accepts.
func FuzzCompare(f *testing.F) {
	f.Add(snapshot(`{"Id":"1","V":1}`), snapshot(`{"Id":"1","V":2}`, `{"Id":"2"}`))
	f.Add("[\n{\"Id\":\"a\\\"b\"}\n]", `{"Id":{"x":[1,"]"]}}`)
	f.Add("{\"Id\":1}\n{\"Id\":1}\n", "[{\"Id\":2},\n")
	f.Fuzz(func(t *testing.T, before, after string) {
		var out bytes.Buffer
		_, err := Compare(context.Background(), strings.NewReader(before), strings.NewReader(after), &out,
			Options{Keys: []string{"Id"}, TempDir: t.TempDir(), ChunkBytes: 64, MaxRowBytes: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("an error not about the content: %v", err)
			}
			return
		}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if line != "" && !json.Valid([]byte(line)) {
				t.Fatalf("invalid change line %q from %q and %q", line, before, after)
			}
		}
	})
}

func FuzzScanObject(f *testing.F) {
	f.Add(`{"a":1,"b":"x","c":[1,{"d":"}"}],"e":null}`)
	f.Add(`{}`)
	f.Add(`{"a\"":"\\"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var members []member
		err := scanObject([]byte(s), func(m member) error { members = append(members, m); return nil })
		if err == nil && !json.Valid([]byte(s)) {
			t.Fatalf("%q: accepted, but it is not JSON", s)
		}
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &obj) != nil {
			return
		}
		// encoding/json turns each byte of a name that is not UTF-8 into
		// U+FFFD, as converting to runes does; scanObject keeps the bytes.
		jsonName := func(m member) string { return string([]rune(nameText(m.name))) }
		count := map[string]int{}
		for _, m := range members {
			count[jsonName(m)]++
		}
		for _, m := range members {
			if count[jsonName(m)] > 1 {
				continue // json keeps the last of a repeated name
			}
			v, ok := obj[jsonName(m)]
			if !ok {
				t.Fatalf("%q: member %s not in the object", s, m.name)
			}
			if !json.Valid(m.value) || !sameJSON(v, m.value) {
				t.Fatalf("%q: member %s value %s, json says %s", s, m.name, m.value, v)
			}
		}
	})
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
