package adapter

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
	"github.com/exportbridge/exportbridge/publish"
)

const (
	testActivity = "5f0c5b0e-0000-4000-8000-000000000001"
	testSecret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// delivery is what a test receiver got: the event and, for completed
// exports, the file behind its DownloadURL, fetched during the delivery.
type delivery struct {
	ID          string
	Attempt     string
	TraceParent string
	Body        map[string]any
	File        []byte
}

// testReceiver verifies signatures, downloads each file while handling the
// request, and answers with respond (default 204).
type testReceiver struct {
	t       testing.TB
	mu      sync.Mutex
	got     []delivery
	respond func(n int, w http.ResponseWriter) bool // true: answered, stop
	url     string
}

func newTestReceiver(t testing.TB) *testReceiver {
	t.Helper()
	r := &testReceiver{t: t}
	key, err := publish.DecodeSecret(testSecret)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := publish.Verify([][]byte{key}, req.Header, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("bad signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		d := delivery{ID: req.Header.Get("webhook-id"), Attempt: req.Header.Get("exportbridge-attempt"), TraceParent: req.Header.Get("traceparent")}
		require.NoError(t, json.Unmarshal(body, &d.Body))
		if u, _ := d.Body["DownloadURL"].(string); u != "" {
			resp, err := http.Get(u)
			if err == nil {
				d.File, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("download %s: %s", redact.URL(u), resp.Status)
				}
			} else {
				t.Errorf("download: %v", err)
			}
		}
		r.mu.Lock()
		r.got = append(r.got, d)
		n := len(r.got)
		respond := r.respond
		r.mu.Unlock()
		if respond != nil && respond(n, w) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *testReceiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// byEntity groups received DataExportCompleted events by entity name.
func (r *testReceiver) byEntity() map[string][]delivery {
	out := map[string][]delivery{}
	for _, d := range r.deliveries() {
		if d.Body["BusinessEventId"] == dataexport.TypeCompleted {
			out[d.Body["EntityName"].(string)] = append(out[d.Body["EntityName"].(string)], d)
		}
	}
	return out
}

type testEnv struct {
	t    *testing.T
	sim  *finopssim.Server
	root string
	cfg  *Config
	rcv  *testReceiver
}

func newTestEnv(t *testing.T, simCfg finopssim.Config, mutate func(*Config)) *testEnv {
	t.Helper()
	if simCfg.Rows == 0 {
		simCfg.Rows = 25
	}
	sim, base := finopssim.StartTest(t, simCfg)
	id, secret := sim.Credentials()
	root := t.TempDir()
	rcv := newTestReceiver(t)
	// Port 0: each app binds a free port and writes the bound address back
	// into server.listen and public_url.
	listen := "127.0.0.1:0"
	cfg := &Config{
		Server:      ServerConfig{Listen: listen, AdminToken: "test-admin-token", ShutdownTimeout: 10 * time.Second},
		Connections: map[string]finops.Config{"finops": {BaseURL: base, TokenURL: finopssim.TokenURL(base), ClientID: id, ClientSecret: secret}},
		Jobs: []JobConfig{
			{Name: "customer-groups", Kind: KindDequeue, Connection: "finops", ActivityID: testActivity, LegalEntity: "usmf"},
			{Name: "vendors", Kind: KindPackageExport, Connection: "finops", DefinitionGroup: "Vendors export", LegalEntity: "usmf",
				PollInterval: 10 * time.Millisecond, Timeout: time.Minute},
		},
		Subscriptions: []publish.SubscriptionConfig{{Name: "flow", URL: rcv.url, Secret: []string{testSecret},
			Retry: []time.Duration{30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}}},
	}
	cfg.Store.DSN = filepath.Join(root, "data", "eb.db")
	cfg.Files.Dir = filepath.Join(root, "data", "files")
	cfg.Files.WorkDir = filepath.Join(root, "data", "work")
	cfg.Quarantine.Dir = filepath.Join(root, "data", "quarantine")
	if mutate != nil {
		mutate(cfg)
	}
	*cfg = cfg.WithDefaults()
	require.Empty(t, cfg.Validate())
	return &testEnv{t: t, sim: sim, root: root, cfg: cfg, rcv: rcv}
}

func (e *testEnv) exportNow(jobs ...string) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := ExportNow(ctx, e.cfg, zerolog.Nop(), ExportNowOptions{Jobs: jobs, PollInterval: 20 * time.Millisecond})
	return err
}

// checkEntityFiles asserts each received entity's file equals the rows the
// simulator put in the package.
func checkEntityFiles(t *testing.T, got map[string][]delivery, pkgs ...finopssim.Package) {
	t.Helper()
	want := 0
	for _, p := range pkgs {
		for _, e := range p.Entities {
			want++
			var match bool
			for _, d := range got[e.Name] {
				var rows []map[string]string
				require.NoError(t, json.Unmarshal(d.File, &rows), "%s: downloaded file is a JSON array", e.Name)
				match = match || sameRows(e, rows)
			}
			require.True(t, match, "no delivered file of %s matches the source data", e.Name)
		}
	}
	total := 0
	for _, ds := range got {
		total += len(ds)
	}
	require.Equal(t, want, total, "one event per entity")
}

// sameRows reports whether rows hold exactly the entity's data (CSV values
// read with encoding/csv semantics: a quoted CRLF is LF).
func sameRows(e finopssim.Entity, rows []map[string]string) bool {
	if len(rows) != len(e.Rows) {
		return false
	}
	for i, row := range e.Rows {
		if len(rows[i]) != len(e.Columns) {
			return false
		}
		for j, col := range e.Columns {
			v := row[j]
			if e.Format == "CSV" {
				v = strings.ReplaceAll(v, "\r\n", "\n")
			}
			if rows[i][col] != v {
				return false
			}
		}
	}
	return true
}

func TestDequeueJobDeliversEveryEntity(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	p1, _ := e.sim.EnqueueSample(testActivity)
	p2, _ := e.sim.EnqueueSample(testActivity)
	require.NoError(t, e.exportNow("customer-groups"))
	checkEntityFiles(t, e.rcv.byEntity(), p1, p2)
	for _, m := range e.sim.Messages(testActivity) {
		require.True(t, m.Acked)
	}
	// The contract of every event.
	for _, d := range e.rcv.deliveries() {
		b := d.Body
		require.Equal(t, "customer-groups", b["Job"])
		require.Equal(t, "dequeue", b["SourceKind"])
		require.Equal(t, "usmf", b["BusinessEventLegalEntity"])
		require.NotEmpty(t, b["MessageId"])
		require.Equal(t, d.ID, b["EventId"])
		require.Contains(t, []any{"CSV", "XML-Element"}, b["SourceFormat"])
		require.Equal(t, float64(len(d.File)), b["ContentLength"])
	}
	// A second run finds the queue empty and sends nothing new.
	require.NoError(t, e.exportNow("customer-groups"))
	require.Len(t, e.rcv.deliveries(), 6)
}

func TestPackageExportJobDeliversEveryEntity(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{ExportPolls: 3}, nil)
	require.NoError(t, e.exportNow("vendors"))
	execs := e.sim.Executions()
	require.Len(t, execs, 1)
	pkg, ok := e.sim.ExportedPackage(execs[0].ID)
	require.True(t, ok)
	checkEntityFiles(t, e.rcv.byEntity(), pkg)
	for _, d := range e.rcv.deliveries() {
		require.Equal(t, "package-export", d.Body["SourceKind"])
		require.Equal(t, execs[0].ID, d.Body["ExecutionId"])
		require.Regexp(t, `^vendors-\d{8}T\d{6}Z-[0-9a-f]{8}$`, d.Body["ExecutionId"])
	}
	// The export is closed: the next run starts a new one.
	require.NoError(t, e.exportNow("vendors"))
	require.Len(t, e.sim.Executions(), 2)
}

func TestFailedExportPublishesItsErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	e.sim.FailGroup("Vendors export", finopssim.ExecutionError{RecordID: "42", Field: "VENDORGROUP", ErrorMessage: "Vendor group 'X' does not exist."})
	err := e.exportNow("vendors")
	require.ErrorIs(t, err, ErrExportFailed)
	require.Contains(t, err.Error(), "export_failed")
	ds := e.rcv.deliveries()
	require.Len(t, ds, 1)
	b := ds[0].Body
	require.Equal(t, dataexport.TypeFailed, b["BusinessEventId"])
	require.Equal(t, "export_failed", b["FailureReason"])
	require.Contains(t, b["FailureMessage"], "record 42: VENDORGROUP: Vendor group 'X' does not exist.")
	require.NotContains(t, b, "DownloadURL")

	st, err := store.Open(context.Background(), e.cfg.Store)
	require.NoError(t, err)
	defer st.Close()
	x, err := st.Export(context.Background(), e.sim.Executions()[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.ExportFailed, x.State, "a failed export is closed as failed")
	require.Contains(t, x.LastError, "Vendor group 'X' does not exist.")
}

// TestPoisonPackagesAreQuarantined: a corrupt zip and a zip-slip package
// are kept whole in quarantine, DataExportFailed is delivered, the messages
// are acknowledged, and nothing is written outside the data folders.
func TestPoisonPackagesAreQuarantined(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	good := finopssim.SamplePackage("x", 5, 1).Zip()
	corrupt := good[:len(good)/2]
	slip := zipWith(map[string]string{"../../escape.csv": "A\r\n1\r\n", "Manifest.xml": ""})
	e.sim.Enqueue(testActivity, corrupt)
	e.sim.Enqueue(testActivity, slip)
	err := e.exportNow("customer-groups")
	require.ErrorIs(t, err, ErrExportFailed, "a DataExportFailed is a failure for export-now")

	reasons := map[string]string{}
	for _, d := range e.rcv.deliveries() {
		require.Equal(t, dataexport.TypeFailed, d.Body["BusinessEventId"])
		reasons[d.Body["FailureReason"].(string)] = d.Body["QuarantineFile"].(string)
		require.Contains(t, d.Body["FailureMessage"], ".bin", "the message names the package file")
	}
	require.Len(t, reasons, 2)
	for reason, q := range reasons {
		require.Contains(t, []string{"corrupt_package", "unsafe_entry"}, reason)
		data, err := os.ReadFile(q)
		require.NoError(t, err, "quarantined package kept")
		require.True(t, strings.HasPrefix(q, e.cfg.Quarantine.Dir))
		require.Contains(t, [][]byte{corrupt, slip}, data, "kept whole")
	}
	for _, m := range e.sim.Messages(testActivity) {
		require.True(t, m.Acked, "poison messages are acknowledged after the failure event is committed")
	}
	// Nothing outside data/.
	entries, err := os.ReadDir(e.root)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "data", entries[0].Name())
	_, err = os.Stat(filepath.Join(e.root, "escape.csv"))
	require.ErrorIs(t, err, os.ErrNotExist)
	work, err := os.ReadDir(e.cfg.Files.WorkDir)
	require.NoError(t, err)
	require.Empty(t, work, "no downloads left behind")
}

func TestRedeliveredMessageIsOnlyAcknowledged(t *testing.T) {
	t.Parallel()
	clock := finopssim.NewClock(time.Now())
	e := newTestEnv(t, finopssim.Config{Now: clock.Now, VisibilityTimeout: time.Minute}, func(c *Config) {
		cc := c.Connections["finops"]
		cc.MaxAttempts = 1
		c.Connections["finops"] = cc
	})
	e.sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/ack/", Status: http.StatusInternalServerError, Times: 1})
	p, _ := e.sim.EnqueueSample(testActivity)
	err := e.exportNow("customer-groups")
	require.ErrorIs(t, err, ErrExportFailed, "a failed ack ends the run with an error")
	require.Contains(t, err.Error(), "FinOps will redeliver it and it will be recognised")
	require.False(t, e.sim.Messages(testActivity)[0].Acked)
	require.Len(t, e.rcv.byEntity(), len(p.Entities), "what was committed is delivered all the same")

	clock.Advance(2 * time.Minute) // FinOps makes it visible again
	require.NoError(t, e.exportNow("customer-groups"))
	msg := e.sim.Messages(testActivity)[0]
	require.True(t, msg.Acked)
	require.Equal(t, 2, msg.Dequeues)
	checkEntityFiles(t, e.rcv.byEntity(), p) // still exactly one event per entity
}

func TestSubscriberRejectingMakesExportNowFail(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	e.rcv.respond = func(_ int, w http.ResponseWriter) bool {
		http.Error(w, "unknown schema", http.StatusBadRequest)
		return true
	}
	e.sim.EnqueueSample(testActivity)
	err := e.exportNow("customer-groups")
	require.ErrorIs(t, err, ErrExportFailed)
	require.Contains(t, err.Error(), "is dead after 1 attempt(s): HTTP 400: unknown schema")
	require.Len(t, e.rcv.deliveries(), 3, "one attempt each: 400 is final")
}

func TestExportNowUnknownJobIsUsageError(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	require.ErrorIs(t, e.exportNow("nope"), ErrUsage)
}

// TestRejectedExportIsClosedAtOnce: FinOps refusing ExportToPackage (400)
// publishes DataExportFailed, closes the export as failed and ends the run;
// nothing polls an export that was never started.
func TestRejectedExportIsClosedAtOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	e.sim.InjectFault(finopssim.Fault{PathPrefix: "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage",
		Status: http.StatusBadRequest, Times: 1})
	err := e.exportNow("vendors")
	require.ErrorIs(t, err, ErrExportFailed)
	require.Contains(t, err.Error(), "export_failed")
	require.Zero(t, e.sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExecutionSummaryStatus"),
		"a refused export is not polled")
	ds := e.rcv.deliveries()
	require.Len(t, ds, 1)
	require.Equal(t, dataexport.TypeFailed, ds[0].Body["BusinessEventId"])

	st, err := store.Open(context.Background(), e.cfg.Store)
	require.NoError(t, err)
	defer st.Close()
	_, err = st.OpenExport(context.Background(), "vendors")
	require.ErrorIs(t, err, store.ErrNotFound, "the export is closed")
}

// TestConvertedFilesLiveInAnObjectStore: with files.driver "s3" or
// "azblob" the converted files go to the bucket or container, and every
// DownloadURL is a link to it (presigned, or with a read-only SAS) that the
// receiver downloads and that matches the source data.
func TestConvertedFilesLiveInAnObjectStore(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{"s3", "azblob"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			var base string
			e := newTestEnv(t, finopssim.Config{}, func(c *Config) {
				c.Files.Driver = driver
				switch driver {
				case "s3":
					srv, bucket := testservice.S3(t)
					c.Files.S3 = files.S3Config{Bucket: bucket, Prefix: "exports/", Endpoint: srv.Endpoint, PathStyle: true,
						AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
					base = srv.Endpoint + "/" + bucket + "/exports/"
				case "azblob":
					az, container := testservice.AzureBlob(t)
					c.Files.Azblob = files.AzblobConfig{AccountURL: az.AccountURL, Container: container, Prefix: "exports/",
						AccountName: az.AccountName, AccountKey: az.AccountKey}
					base = az.AccountURL + "/" + container + "/exports/"
				}
			})
			p1, _ := e.sim.EnqueueSample(testActivity)
			require.NoError(t, e.exportNow("customer-groups"))
			checkEntityFiles(t, e.rcv.byEntity(), p1)
			for _, d := range e.rcv.deliveries() {
				link, _ := d.Body["DownloadURL"].(string)
				require.True(t, strings.HasPrefix(link, base), "a link to the store: %s", redact.URL(link))
			}
			entries, err := os.ReadDir(e.cfg.Files.Dir)
			require.True(t, err != nil || len(entries) == 0, "nothing is kept on local disk")
		})
	}
}
