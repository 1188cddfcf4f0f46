package datapackage

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zip"
)

// checkEntryName refuses names that could escape a target directory if
// anything ever extracted by name: absolute paths, drive letters, "..",
// and backslashes (which Windows tools treat as separators).
func checkEntryName(name string) error {
	switch {
	case name == "":
		return errors.New("empty entry name")
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf("entry %q contains a backslash", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("entry %q is an absolute path", name)
	case len(name) >= 2 && name[1] == ':':
		return fmt.Errorf("entry %q has a drive letter", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("entry %q contains a NUL byte", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return fmt.Errorf("entry %q escapes the package with ..", name)
		}
	}
	if path.Clean(name) != strings.TrimSuffix(name, "/") && !strings.HasSuffix(name, "/") {
		return fmt.Errorf("entry %q is not a clean path", name)
	}
	return nil
}

// checkEntries applies the limits that can be checked from the central
// directory; limitReader enforces them again while reading, since declared
// sizes can lie.
func checkEntries(files []*zip.File, o Options) error {
	if o.MaxEntries > 0 && len(files) > o.MaxEntries {
		return fmt.Errorf("%w: %d entries (max_entries %d)", ErrLimitExceeded, len(files), o.MaxEntries)
	}
	var total uint64
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := checkEntryName(f.Name); err != nil {
			return fmt.Errorf("%w: %w", ErrUnsafeEntry, err)
		}
		// Two entries of one name: which one is "the" Manifest.xml or entity
		// file would depend on the reader. Entry names are looked up without
		// case, as Windows tools write and read them.
		key := strings.ToLower(strings.TrimSuffix(f.Name, "/"))
		if seen[key] {
			return fmt.Errorf("%w: entry %q appears more than once", ErrUnsafeEntry, f.Name)
		}
		seen[key] = true
		if f.Mode()&(1<<27) != 0 || f.Mode().Type()&^0 != 0 && !f.Mode().IsDir() && !f.Mode().IsRegular() {
			return fmt.Errorf("%w: entry %q is not a regular file", ErrUnsafeEntry, f.Name)
		}
		size := f.UncompressedSize64
		if o.MaxEntryBytes > 0 && size > uint64(o.MaxEntryBytes) {
			return fmt.Errorf("%w: entry %q is %d bytes uncompressed (max_entry_bytes %d)", ErrLimitExceeded, f.Name, size, o.MaxEntryBytes)
		}
		if o.MaxRatio > 0 && size > 1<<20 && f.CompressedSize64 > 0 && size/f.CompressedSize64 > uint64(o.MaxRatio) {
			return fmt.Errorf("%w: entry %q expands %d times (max_ratio %d)", ErrLimitExceeded, f.Name, size/f.CompressedSize64, o.MaxRatio)
		}
		total += size
	}
	if o.MaxTotalBytes > 0 && total > uint64(o.MaxTotalBytes) {
		return fmt.Errorf("%w: %d bytes uncompressed in all (max_total_bytes %d)", ErrLimitExceeded, total, o.MaxTotalBytes)
	}
	return nil
}

// limitReader stops a read that produces more than max bytes, or more than
// ratio times the compressed size: the declared sizes are not trusted.
type limitReader struct {
	r         io.Reader
	n, max    int64
	name      string
	totalLeft *int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	*l.totalLeft -= int64(n)
	if l.max > 0 && l.n > l.max {
		return n, fmt.Errorf("%w: entry %q produced more than %d bytes", ErrLimitExceeded, l.name, l.max)
	}
	if *l.totalLeft < 0 {
		return n, fmt.Errorf("%w: package produced more than max_total_bytes", ErrLimitExceeded)
	}
	return n, err
}

// openEntry opens f with the read-side limits applied.
func openEntry(f *zip.File, o Options, totalLeft *int64) (io.ReadCloser, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	max := o.MaxEntryBytes
	if o.MaxRatio > 0 && f.CompressedSize64 > 0 {
		if byRatio := int64(f.CompressedSize64)*o.MaxRatio + 1<<20; max == 0 || byRatio < max {
			max = byRatio
		}
	}
	return struct {
		io.Reader
		io.Closer
	}{&limitReader{r: rc, max: max, name: f.Name, totalLeft: totalLeft}, rc}, nil
}
