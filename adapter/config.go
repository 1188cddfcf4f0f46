package adapter

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	pelletier "github.com/pelletier/go-toml/v2"
	"github.com/robfig/cron/v3"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/console"
	"github.com/exportbridge/exportbridge/dequeue"
	"github.com/exportbridge/exportbridge/exporter"
	"github.com/exportbridge/exportbridge/hub"
	"github.com/exportbridge/exportbridge/internal/conf"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
	"github.com/exportbridge/exportbridge/telemetry"
)

// PublicURLPlaceholder in a subscription's url stands for server.public_url.
const PublicURLPlaceholder = "{public_url}"

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "EXPORTBRIDGE_"

// Config is the whole configuration (config.toml).
type Config struct {
	Server        ServerConfig                 `koanf:"server"`
	Store         store.Config                 `koanf:"store"`
	Files         files.Config                 `koanf:"files"`
	Convert       datapackage.Options          `koanf:"convert"`
	Log           LogConfig                    `koanf:"log"`
	Simulator     SimulatorConfig              `koanf:"simulator"`
	Connections   map[string]finops.Config     `koanf:"connections"`
	Jobs          []JobConfig                  `koanf:"jobs"`
	Subscriptions []publish.SubscriptionConfig `koanf:"subscriptions"`
	Quarantine    QuarantineConfig             `koanf:"quarantine"`
	// Tokens are the API's bearer tokens and their scopes (package access);
	// server.admin_token is one more, named "admin", with scope admin.
	Tokens []access.Token `koanf:"tokens"`
	// Hub tunes raising events and the live streams.
	Hub hub.Config `koanf:"hub"`
	// Console is the operations page at / (on when any token is configured).
	Console console.Config `koanf:"console"`
	// Telemetry sends traces to an OpenTelemetry collector (off by default).
	Telemetry telemetry.Config `koanf:"telemetry"`
}

// ServerConfig is [server].
type ServerConfig struct {
	// Listen is the HTTP address for files, health, metrics and the API.
	// Default "127.0.0.1:8080".
	Listen string `koanf:"listen"`
	// PublicURL is the externally reachable base of DownloadURL. Default
	// "http://" + Listen.
	PublicURL string `koanf:"public_url"`
	// AdminToken is the bearer token for /api; empty disables /api.
	AdminToken string `koanf:"admin_token" secret:"true"`
	// SubscriptionHosts, when set, are the only hosts subscriptions created
	// through the API may target: "hooks.example.com", "*.example.com",
	// "10.0.0.5:8443". Empty: any host (set it when API callers are not
	// fully trusted, to keep them away from internal addresses).
	SubscriptionHosts []string `koanf:"subscription_hosts"`
	// ShutdownTimeout bounds graceful shutdown. Default 30s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers. Default 10s.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 60s.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers. Default 64 KiB.
	MaxHeaderBytes int `koanf:"max_header_bytes"`
	// MaxConnections bounds open connections; more wait to be accepted.
	// Default 1024.
	MaxConnections int `koanf:"max_connections"`
}

// LogConfig is [log].
type LogConfig struct {
	Level  string `koanf:"level"`  // debug | info (default) | warn | error
	Format string `koanf:"format"` // auto (default) | json | console
}

// SimulatorConfig is [simulator]: the built-in FinOps simulator for the demo.
type SimulatorConfig struct {
	Enabled bool   `koanf:"enabled"`
	Listen  string `koanf:"listen"` // default "127.0.0.1:8089"
	// EnqueueEvery is how often a package is queued for each dequeue job
	// pointed at the simulator. Default 20s.
	EnqueueEvery time.Duration `koanf:"enqueue_every"`
	// Rows per entity in generated packages. Default 7.
	Rows int `koanf:"rows"`
}

// QuarantineConfig is [quarantine]: where packages that cannot be processed
// are kept whole.
type QuarantineConfig struct {
	Dir string `koanf:"dir"` // default "data/quarantine"
}

// Job kinds.
const (
	KindDequeue       = dequeue.Kind
	KindPackageExport = exporter.Kind
)

// JobConfig is one [[jobs]] entry.
type JobConfig struct {
	Name       string `koanf:"name"`
	Kind       string `koanf:"kind"` // dequeue | package-export
	Connection string `koanf:"connection"`
	// Schedule is a cron expression (5 fields, or 6 with seconds first) or
	// a descriptor (@every 1m, @hourly). Empty: runs only on demand.
	Schedule    string `koanf:"schedule"`
	LegalEntity string `koanf:"legal_entity"`
	// Jitter delays each scheduled run by a random duration up to this, so
	// jobs on the same schedule do not hit FinOps at once. Default 0.
	Jitter time.Duration `koanf:"jitter"`
	// Encoding overrides [convert] encoding for this job's files.
	Encoding string `koanf:"encoding"`

	// dequeue
	ActivityID string `koanf:"activity_id"`
	// MaxMessages bounds how many messages one run takes off the queue, so
	// a flooded queue cannot keep a run going forever. Default 100.
	MaxMessages int `koanf:"max_messages"`

	// package-export
	DefinitionGroup string        `koanf:"definition_group"`
	PollInterval    time.Duration `koanf:"poll_interval"` // default 15s
	Timeout         time.Duration `koanf:"timeout"`       // default 2h

	// Changes names the key columns of the entities whose changes are
	// announced (DataExportChanged): { "Customer groups" = ["CUSTOMERGROUPID"] }.
	// Entity names are only known at run time: an unknown one is warned
	// of then.
	Changes map[string][]string `koanf:"changes"`
	// ChangesEmptyEvent announces comparisons that found no change too.
	ChangesEmptyEvent bool `koanf:"changes_empty_event"`
	// ChangesInitial: "inserts" announces an entity's first snapshot as
	// all inserts; "" (default) makes it the baseline silently.
	ChangesInitial string `koanf:"changes_initial"`
}

// WithDefaults fills zero fields.
func (j JobConfig) WithDefaults() JobConfig {
	if j.Kind == KindDequeue && j.MaxMessages == 0 {
		j.MaxMessages = 100
	}
	if j.Kind == KindPackageExport {
		if j.PollInterval == 0 {
			j.PollInterval = 15 * time.Second
		}
		if j.Timeout == 0 {
			j.Timeout = 2 * time.Hour
		}
	}
	return j
}

var guidRE = regexp.MustCompile(`^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$`)

// scheduleParser parses job schedules: 5 fields, an optional leading
// seconds field, or descriptors such as @every 1m.
func scheduleParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// Validate reports problems keyed relative to the job's table.
func (j JobConfig) Validate(connections map[string]finops.Config) conf.Problems {
	var ps conf.Problems
	if j.Name == "" {
		ps.Add("name", "is required")
	} else if !publish.ValidName(j.Name) {
		ps.Add("name", "%q may contain only letters, digits, '-', '_' and '.'", j.Name)
	}
	if j.Connection == "" {
		ps.Add("connection", "is required")
	} else if _, ok := connections[j.Connection]; !ok {
		ps.Add("connection", "names connection %q, which is not defined under [connections]", j.Connection)
	}
	if j.Schedule != "" {
		if _, err := scheduleParser().Parse(j.Schedule); err != nil {
			ps.Add("schedule", "invalid schedule %q: %v", j.Schedule, err)
		}
	}
	if j.Jitter < 0 {
		ps.Add("jitter", "must not be negative")
	}
	if j.Encoding != "" {
		if _, err := datapackage.LookupEncoding(j.Encoding); err != nil {
			ps.Add("encoding", "%v", err)
		}
	}
	for entity, keys := range j.Changes {
		key := "changes." + entity
		switch {
		case strings.TrimSpace(entity) == "":
			ps.Add("changes", "an entity name is empty")
		case len(keys) == 0:
			ps.Add(key, "names no key column")
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if strings.TrimSpace(k) == "" {
				ps.Add(key, "a key column name is empty")
			} else if seen[k] {
				ps.Add(key, "names key column %q twice", k)
			}
			seen[k] = true
		}
	}
	switch j.ChangesInitial {
	case "", "inserts":
	default:
		ps.Add("changes_initial", `must be "inserts" or empty, got %q`, j.ChangesInitial)
	}
	if len(j.Changes) == 0 && (j.ChangesEmptyEvent || j.ChangesInitial != "") {
		ps.Add("changes", "is needed by changes_empty_event and changes_initial: name the key columns of each entity")
	}
	onlyFor := func(key, kind string, set bool) {
		if set {
			ps.Add(key, "is only used by %s jobs", kind)
		}
	}
	switch j.Kind {
	case KindDequeue:
		if j.ActivityID == "" {
			ps.Add("activity_id", "is required for dequeue jobs (the ID of the recurring data job)")
		} else if !guidRE.MatchString(j.ActivityID) {
			ps.Add("activity_id", "%q is not a GUID", j.ActivityID)
		}
		if j.MaxMessages < 1 {
			ps.Add("max_messages", "must be at least 1")
		}
		onlyFor("definition_group", KindPackageExport, j.DefinitionGroup != "")
		onlyFor("poll_interval", KindPackageExport, j.PollInterval != 0)
		onlyFor("timeout", KindPackageExport, j.Timeout != 0)
	case KindPackageExport:
		if j.DefinitionGroup == "" {
			ps.Add("definition_group", "is required for package-export jobs (the export project name)")
		}
		if j.PollInterval <= 0 {
			ps.Add("poll_interval", "must be positive")
		}
		if j.Timeout <= 0 {
			ps.Add("timeout", "must be positive")
		} else if j.Timeout < j.PollInterval {
			ps.Add("timeout", "(%s) is shorter than poll_interval (%s)", j.Timeout, j.PollInterval)
		}
		onlyFor("activity_id", KindDequeue, j.ActivityID != "")
		onlyFor("max_messages", KindDequeue, j.MaxMessages != 0)
	case "":
		ps.Add("kind", `is required: "dequeue" or "package-export"`)
	default:
		ps.Add("kind", `must be "dequeue" or "package-export", got %q`, j.Kind)
	}
	return ps
}

// WithDefaults fills zero fields of every section.
func (c Config) WithDefaults() Config {
	if c.Server.Listen == "" {
		c.Server.Listen = "127.0.0.1:8080"
	}
	if c.Server.PublicURL == "" {
		c.Server.PublicURL = "http://" + c.Server.Listen
	}
	c.Server.PublicURL = strings.TrimRight(c.Server.PublicURL, "/")
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = 30 * time.Second
	}
	if c.Server.ReadHeaderTimeout == 0 {
		c.Server.ReadHeaderTimeout = 10 * time.Second
	}
	if c.Server.IdleTimeout == 0 {
		c.Server.IdleTimeout = 60 * time.Second
	}
	if c.Server.MaxHeaderBytes == 0 {
		c.Server.MaxHeaderBytes = 64 << 10
	}
	if c.Server.MaxConnections == 0 {
		c.Server.MaxConnections = 1024
	}
	c.Store = c.Store.WithDefaults()
	c.Files = c.Files.WithDefaults()
	c.Files.PublicURL = c.Server.PublicURL
	c.Convert = c.Convert.WithDefaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	if c.Simulator.Listen == "" {
		c.Simulator.Listen = "127.0.0.1:8089"
	}
	if c.Simulator.EnqueueEvery == 0 {
		c.Simulator.EnqueueEvery = 20 * time.Second
	}
	if c.Simulator.Rows == 0 {
		c.Simulator.Rows = 7
	}
	if c.Quarantine.Dir == "" {
		c.Quarantine.Dir = "data/quarantine"
	}
	conns := make(map[string]finops.Config, len(c.Connections))
	for name, cc := range c.Connections {
		conns[name] = cc.WithDefaults()
	}
	c.Connections = conns
	jobs := make([]JobConfig, len(c.Jobs))
	for i, j := range c.Jobs {
		jobs[i] = j.WithDefaults()
	}
	c.Jobs = jobs
	subs := make([]publish.SubscriptionConfig, len(c.Subscriptions))
	for i, s := range c.Subscriptions {
		// "{public_url}" in a subscription's url is this daemon's own base: the
		// demo's receiver follows server.listen.
		s.URL = strings.ReplaceAll(s.URL, PublicURLPlaceholder, c.Server.PublicURL)
		subs[i] = s.WithDefaults()
	}
	c.Subscriptions = subs
	c.Hub = c.Hub.WithDefaults()
	c.Console = c.Console.WithDefaults()
	c.Telemetry = c.Telemetry.WithDefaults()
	return c
}

// Validate reports every problem with its full key.
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		ps.Add("server.listen", "must be host:port, got %q", c.Server.Listen)
	}
	if u, err := url.Parse(c.Server.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add("server.public_url", "must be an absolute http(s) URL, got %q", c.Server.PublicURL)
	}
	if c.Server.ShutdownTimeout <= 0 {
		ps.Add("server.shutdown_timeout", "must be positive")
	}
	for key, d := range map[string]time.Duration{"server.read_header_timeout": c.Server.ReadHeaderTimeout, "server.idle_timeout": c.Server.IdleTimeout} {
		if d <= 0 {
			ps.Add(key, "must be positive")
		}
	}
	if c.Server.MaxHeaderBytes < 4096 {
		ps.Add("server.max_header_bytes", "must be at least 4096, got %d", c.Server.MaxHeaderBytes)
	}
	if c.Server.MaxConnections < 1 {
		ps.Add("server.max_connections", "must be at least 1")
	}
	ps.Merge("store", c.Store.Validate())
	fc := c.Files
	fc.PublicURL = "" // checked as server.public_url above
	ps.Merge("files", fc.Validate())
	ps.Merge("convert", c.Convert.Validate())
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.Add("log.level", `must be debug, info, warn or error, got %q`, c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		ps.Add("log.format", `must be auto, json or console, got %q`, c.Log.Format)
	}
	if c.Simulator.Enabled {
		if _, _, err := net.SplitHostPort(c.Simulator.Listen); err != nil {
			ps.Add("simulator.listen", "must be host:port, got %q", c.Simulator.Listen)
		}
	}
	for name, cc := range c.Connections {
		ps.Merge("connections."+name, cc.Validate())
	}
	seen := map[string]int{}
	for i, j := range c.Jobs {
		key := fmt.Sprintf("jobs[%d]", i)
		ps.Merge(key, j.Validate(c.Connections))
		if prev, dup := seen[j.Name]; dup && j.Name != "" {
			ps.Add(key+".name", "duplicates the name of jobs[%d]", prev)
		}
		seen[j.Name] = i
	}
	seenTok := map[string]int{}
	for i, t := range c.Tokens {
		key := fmt.Sprintf("tokens[%d]", i)
		switch {
		case t.Name == "":
			ps.Add(key+".name", "is required")
		case t.Name == "admin" && c.Server.AdminToken != "":
			ps.Add(key+".name", `"admin" is server.admin_token's name`)
		}
		if prev, dup := seenTok[t.Name]; dup && t.Name != "" {
			ps.Add(key+".name", "duplicates the name of tokens[%d]", prev)
		}
		seenTok[t.Name] = i
		if len(t.Token) < 16 {
			ps.Add(key+".token", "must be at least 16 characters (use env:NAME or a file to keep it out of the file)")
		}
		if err := access.ValidateScopes(t.Scopes); err != nil {
			ps.Add(key+".scopes", "%v", err)
		}
	}
	ps.Merge("hub", c.Hub.Validate())
	ps.Merge("console", c.Console.Validate())
	ps.Merge("telemetry", c.Telemetry.Validate())
	seenSub := map[string]int{}
	for i, s := range c.Subscriptions {
		key := fmt.Sprintf("subscriptions[%d]", i)
		ps.Merge(key, s.Validate())
		if prev, dup := seenSub[s.Name]; dup && s.Name != "" {
			ps.Add(key+".name", "duplicates the name of subscriptions[%d]", prev)
		}
		seenSub[s.Name] = i
	}
	return ps
}

// keyring is the API's tokens: [[tokens]] and server.admin_token (named
// "admin", scope admin).
func (c *Config) keyring() (*access.Keyring, error) {
	tokens := append([]access.Token(nil), c.Tokens...)
	if c.Server.AdminToken != "" {
		tokens = append(tokens, access.Token{Name: "admin", Token: c.Server.AdminToken, Scopes: []string{access.ScopeAdmin}})
	}
	return access.NewKeyring(tokens)
}

// ConfigError is every problem found while loading a config file.
type ConfigError struct {
	File     string
	Problems conf.Problems
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case p.Env != "":
			fmt.Fprintf(&b, "%s: %s: %s", p.Env, p.Key, p.Msg)
		case p.Line > 0:
			fmt.Fprintf(&b, "%s:%d: %s: %s", e.File, p.Line, p.Key, p.Msg)
		case p.Key != "":
			fmt.Fprintf(&b, "%s: %s: %s", e.File, p.Key, p.Msg)
		default:
			fmt.Fprintf(&b, "%s: %s", e.File, p.Msg)
		}
	}
	return b.String()
}

// LoadOptions are the process inputs LoadConfig reads; zero values use the
// real process environment and file system.
type LoadOptions struct {
	Environ   func() []string
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	baseDir   string // the config file's folder: relative paths start there
}

// LoadConfig reads built-in defaults, then the TOML file at path (optional
// when path is ""), then EXPORTBRIDGE_* environment variables, and returns
// the validated config or a *ConfigError listing every problem.
func LoadConfig(path string, opt LoadOptions) (*Config, error) {
	if opt.Environ == nil {
		opt.Environ = os.Environ
	}
	if opt.ReadFile == nil {
		opt.ReadFile = os.ReadFile
	}
	name := path
	if name == "" {
		name = "(defaults)"
	}
	var data []byte
	if path != "" {
		b, err := opt.ReadFile(path)
		if err != nil {
			return nil, &ConfigError{File: name, Problems: conf.Problems{{Msg: fmt.Sprintf("cannot read config: %v", err)}}}
		}
		data = b
		// Relative paths in the file (the store, the folders, every *_file
		// secret) mean the config's folder, wherever the command runs from.
		base := filepath.Dir(path)
		read := opt.ReadFile
		opt.ReadFile = func(p string) ([]byte, error) { return read(resolve(base, p)) }
		opt.baseDir = base
	}
	return parseConfig(name, data, opt)
}

// resolve makes p absolute against base when it is relative.
func resolve(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

func parseConfig(name string, data []byte, opt LoadOptions) (*Config, error) {
	k := koanf.New(".")
	if len(data) > 0 {
		if err := k.Load(rawbytes.Provider(data), toml.Parser()); err != nil {
			p := conf.Problem{Msg: "invalid TOML: " + err.Error()}
			var de *pelletier.DecodeError
			if errors.As(err, &de) {
				p.Line, _ = de.Position()
				p.Msg = "invalid TOML: " + de.Error()
			}
			return nil, &ConfigError{File: name, Problems: conf.Problems{p}}
		}
	}
	// Only EXPORTBRIDGE_SECTION__KEY variables override keys; a variable
	// without "__" (EXPORTBRIDGE_ADMIN_TOKEN) is a secret for env:NAME.
	fromEnv := map[string]string{} // key → the variable that set it
	envp := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: opt.Environ,
		TransformFunc: func(k, v string) (string, any) {
			rest := strings.TrimPrefix(k, EnvPrefix)
			if !strings.Contains(rest, "__") {
				return "", nil
			}
			key := strings.ReplaceAll(strings.ToLower(rest), "__", ".")
			fromEnv[key] = k
			return key, v
		},
	})
	if err := k.Load(envp, nil); err != nil {
		return nil, &ConfigError{File: name, Problems: conf.Problems{{Msg: "reading environment: " + err.Error()}}}
	}
	var cfg Config
	dec := conf.Decoder{LookupEnv: opt.LookupEnv, ReadFile: opt.ReadFile}
	ps := dec.Decode(k.Raw(), &cfg)
	cfg = cfg.WithDefaults()
	if opt.baseDir != "" {
		if cfg.Store.Driver == "sqlite" {
			cfg.Store.DSN = resolve(opt.baseDir, cfg.Store.DSN)
		}
		cfg.Files.Dir = resolve(opt.baseDir, cfg.Files.Dir)
		cfg.Files.WorkDir = resolve(opt.baseDir, cfg.Files.WorkDir)
		cfg.Quarantine.Dir = resolve(opt.baseDir, cfg.Quarantine.Dir)
	}
	ps = append(ps, cfg.Validate()...)
	if len(ps) > 0 {
		ps.Locate(conf.NewLineIndex(data).Line)
		for i, p := range ps {
			if v, ok := fromEnv[p.Key]; ok {
				ps[i].Env, ps[i].Line = v, 0
			}
		}
		return nil, &ConfigError{File: name, Problems: ps}
	}
	return &cfg, nil
}
