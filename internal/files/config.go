package files

import (
	"net/url"
	"time"

	"github.com/exportbridge/exportbridge/internal/conf"
)

// Config is [files]: where converted files live and how their URLs are signed.
type Config struct {
	// Driver is where converted files are kept: "local" (Dir, served by
	// exportbridge's download handler; the default), "s3" (a bucket;
	// DownloadURLs are presigned) or "azblob" (an Azure Storage container;
	// DownloadURLs carry a read-only SAS).
	Driver string `koanf:"driver"`
	// S3 is [files.s3], for driver "s3".
	S3 S3Config `koanf:"s3"`
	// Azblob is [files.azblob], for driver "azblob".
	Azblob AzblobConfig `koanf:"azblob"`
	// Dir holds converted files (driver "local"). Default "data/files".
	Dir string `koanf:"dir"`
	// WorkDir holds downloads while they are converted. It should be on the
	// same file system as Dir and the quarantine folder, so that packages
	// move there by rename. Default "data/work".
	WorkDir string `koanf:"work_dir"`
	// URLTTL is the lifetime of each DownloadURL. Default 1h.
	URLTTL time.Duration `koanf:"url_ttl"`
	// Retention: converted files are deleted this long after they were
	// written. Default 168h (7 days, as FinOps keeps its blobs).
	Retention time.Duration `koanf:"retention"`
	// SigningKey is the HMAC key for download URLs. Empty: one is generated
	// once and kept in the store, so URLs survive restarts.
	SigningKey string `koanf:"signing_key" secret:"true"`
	// MaxRanges is the most byte ranges one download request may ask for; a
	// request with more is answered with the whole file. Default 8.
	MaxRanges int `koanf:"max_ranges"`
	// OrphanGrace: files under dir and work_dir that no record references
	// are deleted once they are this old (at start and by the sweeper); what
	// a crash left half-written. Default 1h.
	OrphanGrace time.Duration `koanf:"orphan_grace"`
	// PublicURL is the base of download URLs; set by the adapter from
	// [server] public_url, not read from [files].
	PublicURL string `koanf:"-"`
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = "local"
	}
	if c.Dir == "" {
		c.Dir = "data/files"
	}
	if c.WorkDir == "" {
		c.WorkDir = "data/work"
	}
	if c.URLTTL == 0 {
		c.URLTTL = time.Hour
	}
	if c.Retention == 0 {
		c.Retention = 168 * time.Hour
	}
	if c.MaxRanges == 0 {
		c.MaxRanges = 8
	}
	if c.OrphanGrace == 0 {
		c.OrphanGrace = time.Hour
	}
	return c
}

// Validate reports problems keyed relative to [files].
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.URLTTL <= 0 {
		ps.Add("url_ttl", "must be positive")
	}
	if c.Retention <= 0 {
		ps.Add("retention", "must be positive")
	}
	if c.Retention > 0 && c.URLTTL > c.Retention {
		ps.Add("url_ttl", "(%s) is longer than retention (%s): links would outlive their files", c.URLTTL, c.Retention)
	}
	if c.MaxRanges < 1 {
		ps.Add("max_ranges", "must be at least 1")
	}
	if c.OrphanGrace <= 0 {
		ps.Add("orphan_grace", "must be positive")
	}
	switch c.Driver {
	case "local":
	case "s3":
		ps.Merge("s3", c.S3.Validate())
		if c.URLTTL > maxPresign {
			ps.Add("url_ttl", "(%s) is longer than an S3 presigned URL may live (7 days)", c.URLTTL)
		}
	case "azblob":
		ps.Merge("azblob", c.Azblob.Validate())
	default:
		ps.Add("driver", `unsupported driver %q (supported: "local", "s3", "azblob")`, c.Driver)
	}
	if c.SigningKey != "" && len(c.SigningKey) < 16 {
		ps.Add("signing_key", "is too short: use at least 16 characters (32 random bytes recommended)")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" {
			ps.Add("public_url", "must be an absolute URL")
		}
	}
	return ps
}
