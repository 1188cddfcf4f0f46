package datapackage

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zip"

	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/filename"
	"golang.org/x/text/encoding"
)

// Result describes one converted entity file.
type Result struct {
	Entity          string
	SourceFile      string // entry name in the package
	SourceFormat    string // the manifest's value as written, or derived from the extension
	Records         int64
	Bytes           int64  // size as stored (after compression)
	SHA256          string // hex, of the bytes as stored
	Path            string
	ContentType     string // application/json or application/x-ndjson
	ContentEncoding string // "", "gzip" or "zstd"
	// Started and Finished bound the entity's conversion (its trace span).
	Started, Finished time.Time
}

// Conversion is the outcome of converting one package.
type Conversion struct {
	Package         string // package file name
	DefinitionGroup string
	PackageVersion  string
	HasManifest     bool
	Results         []Result
	// Failures are entities that could not be converted while the others
	// were; each is an *Error with the entity, file, line and reason.
	Failures []*Error
}

// entityFile is one entity to convert.
type entityFile struct {
	name, format, sheet string
	zf                  *zip.File // nil for a bare file
}

// Convert reads the package at pkgPath (a DMF zip, or a single bare entity
// file) and writes one JSON file per entity into outDir. A package-level
// problem (corrupt zip, unsafe entry, limit exceeded, bad manifest) returns
// an *Error and leaves nothing in outDir; an entity that cannot be
// converted is listed in Failures and the other entities are kept.
func Convert(ctx context.Context, pkgPath, outDir string, o Options) (*Conversion, error) {
	o = o.WithDefaults()
	if o.WorkDir == "" {
		o.WorkDir = outDir
	}
	pkgName := filepath.Base(pkgPath)
	fail := func(reason Reason, file string, err error) (*Conversion, error) {
		if fault.IsEnvironment(err) {
			return nil, environmentError(pkgName, file, err)
		}
		var le *lineError
		var line int64
		if errors.As(err, &le) {
			line, err = le.line, le.err
		}
		return nil, &Error{Reason: reason, Package: pkgName, File: file, Line: line, Err: err}
	}
	fallback, err := LookupEncoding(o.Encoding)
	if err != nil {
		return fail(ReasonUnsupported, "", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("datapackage: %w", err)
	}
	head, err := readHead(pkgPath, 8192)
	if err != nil {
		return nil, fmt.Errorf("datapackage: %w", err)
	}
	conv := &Conversion{Package: pkgName}
	var entities []entityFile
	if !bytes.HasPrefix(head, []byte("PK")) {
		if !looksLikeText(head) {
			return fail(ReasonCorrupt, "", errors.New("not a zip package and not a text file"))
		}
		name := o.BareName
		if name == "" {
			name = strings.TrimSuffix(pkgName, filepath.Ext(pkgName))
		}
		return convertBare(ctx, pkgPath, name, head, outDir, o, fallback, conv)
	}
	zr, err := zip.OpenReader(pkgPath)
	if err != nil {
		return fail(ReasonCorrupt, "", fmt.Errorf("cannot open zip: %w", err))
	}
	defer zr.Close()
	if err := checkEntries(zr.File, o); err != nil {
		reason := ReasonLimit
		if errors.Is(err, ErrUnsafeEntry) {
			reason = ReasonUnsafe
		}
		return fail(reason, "", err)
	}
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		if !f.Mode().IsDir() {
			byName[strings.ToLower(f.Name)] = f
		}
	}
	if mf := byName["manifest.xml"]; mf != nil {
		data, err := readSmall(mf, o)
		if err != nil {
			return fail(metadataReason(err), mf.Name, err)
		}
		m, err := ParseManifest(data)
		if err != nil {
			return fail(metadataReason(err), mf.Name, err)
		}
		conv.HasManifest, conv.DefinitionGroup = true, m.DefinitionGroupName
		for _, e := range m.Entities {
			p := strings.ReplaceAll(strings.TrimSpace(e.InputFilePath), `\`, "/")
			zf := byName[strings.ToLower(p)]
			if zf == nil {
				zf = byName[strings.ToLower(path.Base(p))]
			}
			if zf == nil {
				conv.Failures = append(conv.Failures, &Error{Reason: ReasonCorrupt, Package: pkgName, Entity: e.EntityName, File: e.InputFilePath,
					Err: fmt.Errorf("Manifest.xml names %q for entity %q, but the package has no such file", e.InputFilePath, e.EntityName)})
				continue
			}
			entities = append(entities, entityFile{name: strings.TrimSpace(e.EntityName), format: strings.TrimSpace(e.SourceFormat), sheet: e.ExcelSheetName, zf: zf})
		}
		if hf := byName["packageheader.xml"]; hf != nil {
			if data, err := readSmall(hf, o); err == nil {
				if h, err := ParseHeader(data); err == nil {
					conv.PackageVersion = h.PackageVersion
				}
			}
		}
	} else {
		for _, f := range zr.File {
			base := path.Base(f.Name)
			if f.Mode().IsDir() || strings.EqualFold(base, "PackageHeader.xml") || strings.HasPrefix(base, ".") {
				continue
			}
			entities = append(entities, entityFile{name: strings.TrimSuffix(base, path.Ext(base)), zf: f})
		}
	}
	totalLeft := o.MaxTotalBytes
	if totalLeft <= 0 {
		totalLeft = 1 << 62
	}
	names := map[string]int{}
	for _, e := range entities {
		if err := ctx.Err(); err != nil {
			removeResults(conv)
			return nil, err
		}
		res, err := convertEntry(ctx, e, outDir, uniqueName(names, e.name), o, fallback, &totalLeft)
		if err != nil && fault.IsEnvironment(err) {
			// Not the package's fault: keep nothing, blame nothing.
			removeResults(conv)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, environmentError(pkgName, e.zf.Name, err)
		}
		if err != nil {
			reason := classify(err)
			packageLevel := reason == ReasonCorrupt || reason == ReasonLimit && !errors.Is(err, errRecordLimit)
			if packageLevel || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				// The package itself is broken or hostile: keep nothing.
				removeResults(conv)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				out, ferr := fail(reason, e.zf.Name, err)
				if fe, ok := ferr.(*Error); ok {
					fe.Entity = e.name
				}
				return out, ferr
			}
			var le *lineError
			fe := &Error{Reason: reason, Package: pkgName, Entity: e.name, File: e.zf.Name, Err: err}
			if errors.As(err, &le) {
				fe.Line, fe.Err = le.line, le.err
			}
			conv.Failures = append(conv.Failures, fe)
			continue
		}
		conv.Results = append(conv.Results, *res)
	}
	return conv, nil
}

// environmentError reports a fault of the machine (disk full, I/O error,
// permission) met while converting file of package pkg. It is not an *Error:
// the caller must not quarantine the package or publish a failure for it.
func environmentError(pkg, file string, err error) error {
	if file == "" || file == pkg {
		return fmt.Errorf("datapackage: %s: %w", pkg, err)
	}
	return fmt.Errorf("datapackage: %s: %s: %w", pkg, file, err)
}

// metadataReason is the reason a Manifest.xml that cannot be read fails its
// package with: over a limit, or corrupt.
func metadataReason(err error) Reason {
	if errors.Is(err, ErrLimitExceeded) {
		return ReasonLimit
	}
	return ReasonCorrupt
}

// classify maps a conversion error to its reason.
func classify(err error) Reason {
	var fe flate.CorruptInputError
	switch {
	case errors.Is(err, ErrLimitExceeded):
		return ReasonLimit
	case errors.Is(err, ErrUnsupportedFormat):
		return ReasonUnsupported
	case errors.Is(err, ErrUnsafeEntry):
		return ReasonUnsafe
	case errors.Is(err, zip.ErrChecksum), errors.Is(err, zip.ErrFormat), errors.Is(err, zip.ErrAlgorithm),
		errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &fe), strings.Contains(err.Error(), "flate: corrupt input"):
		return ReasonCorrupt
	}
	return ReasonConvert
}

func removeResults(c *Conversion) {
	for _, r := range c.Results {
		os.Remove(r.Path)
	}
	c.Results = nil
}

func readHead(p string, n int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return buf[:m], nil
}

// maxMetadataBytes bounds Manifest.xml and PackageHeader.xml: a manifest of
// 10,000 entities is about 3 MB.
const maxMetadataBytes = 8 << 20

// readSmall reads a metadata entry (Manifest.xml, PackageHeader.xml),
// bounded at maxMetadataBytes whatever the limits say.
func readSmall(f *zip.File, o Options) ([]byte, error) {
	if f.UncompressedSize64 > maxMetadataBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes (metadata files are limited to %d)", ErrLimitExceeded, f.Name, f.UncompressedSize64, maxMetadataBytes)
	}
	left := int64(maxMetadataBytes)
	rc, err := openEntry(f, o, &left)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// uniqueName makes a file-system-safe output name for an entity, unique
// within the package (case-insensitively).
func uniqueName(seen map[string]int, entity string) string {
	name := filename.Safe(entity, "entity")
	seen[strings.ToLower(name)]++
	if n := seen[strings.ToLower(name)]; n > 1 {
		name = fmt.Sprintf("%s_%d", name, n)
	}
	return name
}

func outputPath(outDir, base string, o Options) (string, string, string) {
	ext, ct := ".json", "application/json"
	if o.Format == FormatNDJSON {
		ext, ct = ".ndjson", "application/x-ndjson"
	}
	enc := ""
	switch o.Compress {
	case CompressGzip:
		ext, enc = ext+".gz", "gzip"
	case CompressZstd:
		ext, enc = ext+".zst", "zstd"
	}
	return filepath.Join(outDir, base+ext), ct, enc
}

func convertEntry(ctx context.Context, e entityFile, outDir, base string, o Options, fallback encoding.Encoding, totalLeft *int64) (*Result, error) {
	k, delim, utf16 := fileKind(e.format, e.zf.Name)
	format := e.format
	if k == kindUnsupported {
		f := format
		if f == "" {
			f = strings.TrimPrefix(path.Ext(e.zf.Name), ".")
		}
		return nil, fmt.Errorf("%w %q for entity %q", ErrUnsupportedFormat, f, e.name)
	}
	rc, err := openEntry(e.zf, o, totalLeft)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if k == kindXLSX {
		tmp, err := extractTemp(rc, o)
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp)
		if format == "" {
			format = "EXCEL"
		}
		return writeEntity(ctx, e, outDir, base, format, o, func(rw *recordWriter) error { return convertXLSX(tmp, e.sheet, o, rw) })
	}
	ra := newReadAhead(rc, int64(e.zf.UncompressedSize64))
	defer ra.Close()
	br := bufio.NewReaderSize(ra, 64<<10)
	if format == "" {
		head, _ := br.Peek(4096)
		format = derivedFormat(e.zf.Name, head)
	}
	return writeEntity(ctx, e, outDir, base, format, o, func(rw *recordWriter) error {
		return convertText(br, k, delim, utf16, fallback, rw)
	})
}

// convertBare converts a download that is one entity file, not a package.
func convertBare(ctx context.Context, p, name string, head []byte, outDir string, o Options, fallback encoding.Encoding, conv *Conversion) (*Conversion, error) {
	k, delim, utf16 := kindDelimited, byte(0), false
	format := "CSV"
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF}), " \t\r\n")
	switch {
	case bytes.HasPrefix(trimmed, []byte("<")):
		k, format = kindXML, xmlStyle(head)
	case bytes.HasPrefix(trimmed, []byte("[")), bytes.HasPrefix(trimmed, []byte("{")):
		k, format = kindJSON, "JSON"
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("datapackage: %w", err)
	}
	defer f.Close()
	e := entityFile{name: name}
	br := bufio.NewReaderSize(f, 64<<10)
	res, err := writeEntity(ctx, e, outDir, uniqueName(map[string]int{}, name), format, o, func(rw *recordWriter) error {
		return convertText(br, k, delim, utf16, fallback, rw)
	})
	if err != nil && fault.IsEnvironment(err) {
		return nil, environmentError(conv.Package, conv.Package, err)
	}
	if err != nil {
		fe := &Error{Reason: classify(err), Package: conv.Package, Entity: name, File: conv.Package, Err: err}
		var le *lineError
		if errors.As(err, &le) {
			fe.Line, fe.Err = le.line, le.err
		}
		conv.Failures = append(conv.Failures, fe)
		return conv, nil
	}
	res.SourceFile = conv.Package
	conv.Results = append(conv.Results, *res)
	return conv, nil
}

func convertText(br *bufio.Reader, k kind, delim byte, utf16 bool, fallback encoding.Encoding, rw *recordWriter) error {
	r := textReader(br, fallback, utf16)
	switch k {
	case kindDelimited:
		tr := bufio.NewReaderSize(r, 256<<10)
		if delim == 0 {
			head, _ := tr.Peek(64 << 10)
			delim = sniffDelimiter(head)
		}
		c := newCSVConverter(tr, delim, rw)
		if err := c.readHeader(); err != nil {
			return err
		}
		return c.convert()
	case kindXML:
		return convertXML(r, rw)
	case kindJSON:
		return convertJSON(r, rw)
	}
	return ErrUnsupportedFormat
}

func writeEntity(ctx context.Context, e entityFile, outDir, base, format string, o Options, convert func(*recordWriter) error) (*Result, error) {
	started := time.Now()
	final, ct, enc := outputPath(outDir, base, o)
	sizeHint := int64(-1)
	if e.zf != nil {
		sizeHint = int64(e.zf.UncompressedSize64)
	}
	out, err := createOutput(final, o, sizeHint)
	if err != nil {
		return nil, err
	}
	rw := newRecordWriter(ctx, out.sink, o.Format)
	rw.maxRecord, rw.maxField = o.MaxRecordBytes, o.MaxFieldBytes
	if o.Progress != nil {
		rw.progress = func(n int64) { o.Progress(e.name, n) }
	}
	if err := convert(rw); err != nil {
		out.abort()
		return nil, err
	}
	if err := rw.finish(); err != nil {
		out.abort()
		return nil, err
	}
	size, sum, err := out.commit()
	if err != nil {
		return nil, err
	}
	if o.Progress != nil {
		o.Progress(e.name, rw.records)
	}
	src := ""
	if e.zf != nil {
		src = e.zf.Name
	}
	return &Result{Entity: e.name, SourceFile: src, SourceFormat: format, Records: rw.records, Bytes: size, SHA256: sum,
		Path: final, ContentType: ct, ContentEncoding: enc, Started: started, Finished: time.Now()}, nil
}

func extractTemp(r io.Reader, o Options) (string, error) {
	f, err := o.CreateTemp(o.WorkDir, ".xlsx-*.tmp")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
