package change

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeSnapshots writes two snapshots of rows rows, as the converter
// does, in a shuffled order each: after has 1% of the rows changed (a
// third updated, a third deleted, a third replaced by new keys).
func writeSnapshots(tb testing.TB, dir string, rows int) (before, after string) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(7, 9))
	cities := []string{"Oslo", "Bergen", "München", "Lyon", "Seattle", "東京"}
	row := func(w *bufio.Writer, id int, variant int, last bool) {
		fmt.Fprintf(w, `{"dataAreaId":"usmf","CustomerAccount":"C%08d","Name":"Customer %d","City":"%s","CreditLimit":%d.50,"Blocked":"No","Group":"%d"}`,
			id, id, cities[(id+variant)%len(cities)], (id*37)%100000, id%40)
		if !last {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
	}
	write := func(name string, ids []int, variant func(id int) int) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString("[\n")
		for i, id := range ids {
			row(w, id, variant(id), i == len(ids)-1)
		}
		w.WriteString("]\n")
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	ids := rng.Perm(rows)
	before = write("before.json", ids, func(int) int { return 0 })
	var next []int
	for _, id := range ids {
		switch {
		case id%100 == 0 && id%300 == 0: // deleted
		case id%100 == 0 && id%300 == 100: // replaced by a new key
			next = append(next, id+rows)
		default:
			next = append(next, id)
		}
	}
	rng.Shuffle(len(next), func(i, j int) { next[i], next[j] = next[j], next[i] })
	after = write("after.json", next, func(id int) int {
		if id%100 == 0 && id%300 == 200 {
			return 1 // updated: another city
		}
		return 0
	})
	return before, after
}

// readOnce is the floor: each snapshot read once, each row split into
// members and its key taken, as Compare must at least do.
func readOnce(paths ...string) error {
	keys := newKeyColumns([]string{"dataAreaId", "CustomerAccount"})
	found := make([][]byte, 2)
	var sk, kj []byte
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = readRows(f, 1<<20, func(_ int64, row []byte) error {
			var err error
			sk, kj, err = keys.keyOf(row, sk[:0], kj[:0], found)
			return err
		})
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func compareFiles(before, after, tmp string, out io.Writer) (Summary, error) {
	b, err := os.Open(before)
	if err != nil {
		return Summary{}, err
	}
	defer b.Close()
	a, err := os.Open(after)
	if err != nil {
		return Summary{}, err
	}
	defer a.Close()
	return Compare(context.Background(), b, a, out, Options{Keys: []string{"dataAreaId", "CustomerAccount"}, TempDir: tmp})
}

// rssChildEnv makes the test binary compare two files and exit: the
// benchmark reads the child's peak RSS, which nothing else inflates.
const rssChildEnv = "EXPORTBRIDGE_CHANGE_RSS_CHILD"

func TestMain(m *testing.M) {
	if args := os.Getenv(rssChildEnv); args != "" {
		var before, after, tmp string
		fmt.Sscan(args, &before, &after, &tmp)
		if _, err := compareFiles(before, after, tmp, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// VmHWM is this process's own peak: the rusage of a child counts
		// the parent's memory at the fork, which the snapshots' generation
		// made large.
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				fmt.Println("peak_kb=" + strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkCompare compares two snapshots of 1 M rows (set
// EXPORTBRIDGE_CHANGE_ROWS for another size) with 1% changed, against the
// floor of reading both once, measured in the same run; and reports the
// peak RSS of a process that does only the comparison.
//
//	go test -run '^$' -bench Compare -benchtime 3x ./change/
func BenchmarkCompare(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("EXPORTBRIDGE_CHANGE_ROWS")); err == nil && v > 0 {
		rows = v
	}
	dir := b.TempDir()
	before, after := writeSnapshots(b, dir, rows)
	var floor, cmp time.Duration
	var sum Summary
	for b.Loop() {
		t0 := time.Now()
		if err := readOnce(before, after); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var err error
		if sum, err = compareFiles(before, after, dir, io.Discard); err != nil {
			b.Fatal(err)
		}
		floor, cmp = floor+t1.Sub(t0), cmp+time.Since(t1)
	}
	if want := int64(rows / 100); sum.Inserted+sum.Updated+sum.Deleted < want*9/10 {
		b.Fatalf("expected about %d changes, got %+v", want, sum)
	}
	n := float64(b.N)
	b.ReportMetric(floor.Seconds()/n, "floor-s/op")
	b.ReportMetric(cmp.Seconds()/n, "compare-s/op")
	b.ReportMetric(cmp.Seconds()/floor.Seconds(), "x-floor")
	b.ReportMetric(0, "ns/op")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+before+" "+after+" "+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("the comparing process: %v\n%s", err, out)
	}
	_, kb, ok := strings.Cut(strings.TrimSpace(string(out)), "peak_kb=")
	peak, err := strconv.ParseFloat(kb, 64)
	if !ok || err != nil {
		b.Fatalf("the comparing process said %q", out)
	}
	b.ReportMetric(peak/1024, "peak-RSS-MB")
}
