package datapackage

import (
	"os"

	"github.com/exportbridge/exportbridge/internal/conf"
)

// Output formats and compressions.
const (
	FormatJSON   = "json"   // one JSON array of objects per entity
	FormatNDJSON = "ndjson" // one JSON object per line

	CompressNone = "none"
	CompressGzip = "gzip"
	CompressZstd = "zstd"
)

// Default limits on one record and one field.
const (
	defaultMaxRecordBytes = 16 << 20
	defaultMaxFieldBytes  = 16 << 20
)

// Options is [convert]: the output form and the limits that protect the
// converter from hostile or broken packages.
type Options struct {
	Format   string `koanf:"format"`   // json (default) | ndjson
	Compress string `koanf:"compress"` // none (default) | gzip | zstd
	// MaxEntries bounds the number of files in a package. Default 10000.
	MaxEntries int `koanf:"max_entries"`
	// MaxEntryBytes bounds one file's uncompressed size. Default 16 GiB.
	MaxEntryBytes int64 `koanf:"max_entry_bytes"`
	// MaxTotalBytes bounds the package's uncompressed size. Default 64 GiB.
	MaxTotalBytes int64 `koanf:"max_total_bytes"`
	// MaxRatio bounds uncompressed/compressed size of an entry (zip bombs
	// reach millions; real CSV exports stay well under 100). Default 1000.
	MaxRatio int64 `koanf:"max_ratio"`
	// MaxRecordBytes bounds one record (a CSV line with its quoted line
	// breaks, an XML record element, a JSON object, a worksheet row) as
	// converted. Past it the entity fails as limit_exceeded. Default 16 MiB.
	MaxRecordBytes int `koanf:"max_record_bytes"`
	// MaxFieldBytes bounds one field's value. Default 16 MiB.
	MaxFieldBytes int `koanf:"max_field_bytes"`
	// MaxSharedStrings and MaxSharedStringsBytes bound an .xlsx workbook's
	// shared string table, which is held in memory while its sheet is read.
	// Defaults 1,000,000 strings and 32 MiB.
	MaxSharedStrings      int   `koanf:"max_shared_strings"`
	MaxSharedStringsBytes int64 `koanf:"max_shared_strings_bytes"`
	// Encoding is the code page of delimited files without a byte-order
	// mark: "utf-8" (default), "utf-16le", "windows-1252", any name known to
	// golang.org/x/text/encoding/htmlindex. Jobs may override it.
	Encoding string `koanf:"encoding"`

	// BareName is the entity name for a download that is not a zip but a
	// single entity file ("File" recurring jobs). Default: the file name
	// without extension.
	BareName string `koanf:"-"`
	// Progress, when set, is called as records are converted.
	Progress func(entity string, records int64) `koanf:"-"`
	// WorkDir holds temporary files (a workbook taken out of the package).
	// Default: the output directory. The runner sets [files] work_dir.
	WorkDir string `koanf:"-"`
	// NoSync skips fsyncing converted files. Only the zip fuzz target sets
	// it, to reach a useful number of executions per second.
	NoSync bool `koanf:"-"`
	// CreateTemp creates every file the converter writes. Default
	// os.CreateTemp; tests hand it /dev/full to meet a full disk.
	CreateTemp func(dir, pattern string) (*os.File, error) `koanf:"-"`
}

// WithDefaults fills zero fields.
func (o Options) WithDefaults() Options {
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Compress == "" {
		o.Compress = CompressNone
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 10000
	}
	if o.MaxEntryBytes == 0 {
		o.MaxEntryBytes = 16 << 30
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = 64 << 30
	}
	if o.MaxRatio == 0 {
		o.MaxRatio = 1000
	}
	if o.Encoding == "" {
		o.Encoding = "utf-8"
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = defaultMaxRecordBytes
	}
	if o.MaxFieldBytes == 0 {
		o.MaxFieldBytes = defaultMaxFieldBytes
	}
	if o.MaxSharedStrings == 0 {
		o.MaxSharedStrings = 1_000_000
	}
	if o.MaxSharedStringsBytes == 0 {
		o.MaxSharedStringsBytes = 32 << 20
	}
	if o.CreateTemp == nil {
		o.CreateTemp = os.CreateTemp
	}
	return o
}

// Validate reports problems keyed relative to [convert].
func (o Options) Validate() conf.Problems {
	var ps conf.Problems
	if o.Format != FormatJSON && o.Format != FormatNDJSON {
		ps.Add("format", `must be "json" or "ndjson", got %q`, o.Format)
	}
	switch o.Compress {
	case CompressNone, CompressGzip, CompressZstd:
	default:
		ps.Add("compress", `must be "none", "gzip" or "zstd", got %q`, o.Compress)
	}
	if o.MaxEntries < 0 {
		ps.Add("max_entries", "must not be negative")
	}
	if o.MaxEntryBytes < 0 {
		ps.Add("max_entry_bytes", "must not be negative")
	}
	if o.MaxTotalBytes < 0 {
		ps.Add("max_total_bytes", "must not be negative")
	}
	if o.MaxRatio < 0 {
		ps.Add("max_ratio", "must not be negative")
	}
	for key, n := range map[string]int64{"max_record_bytes": int64(o.MaxRecordBytes), "max_field_bytes": int64(o.MaxFieldBytes),
		"max_shared_strings": int64(o.MaxSharedStrings), "max_shared_strings_bytes": o.MaxSharedStringsBytes} {
		if n < 0 {
			ps.Add(key, "must not be negative")
		}
	}
	if o.MaxRecordBytes > 0 && o.MaxFieldBytes > o.MaxRecordBytes {
		ps.Add("max_field_bytes", "(%d) must not exceed max_record_bytes (%d)", o.MaxFieldBytes, o.MaxRecordBytes)
	}
	if _, err := LookupEncoding(o.Encoding); err != nil {
		ps.Add("encoding", "%v", err)
	}
	return ps
}
