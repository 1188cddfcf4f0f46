package datapackage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// outputFile is a converted file being written: converter → (compressor) →
// SHA-256 and byte count → temp file, renamed into place by commit.
type outputFile struct {
	f     *os.File
	final string
	sum   hash.Hash
	n     int64
	comp  io.WriteCloser // nil when not compressing
	sink  *asyncWriter
	// noSync skips the fsync (Options.NoSync).
	noSync bool
}

// writebackEvery is how many bytes are written between writeback requests.
const writebackEvery = 8 << 20

// fileSink hashes and counts what it writes to the file, and starts
// writeback every writebackEvery bytes.
type fileSink struct {
	f       *os.File
	h       hash.Hash
	n       *int64
	flushed int64 // bytes handed to writeback so far
}

func (s *fileSink) Write(p []byte) (int, error) {
	s.h.Write(p)
	n, err := s.f.Write(p)
	*s.n += int64(n)
	if *s.n-s.flushed >= writebackEvery {
		startWriteback(s.f, s.flushed, *s.n-s.flushed)
		s.flushed = *s.n
	}
	return n, err
}

func createOutput(final string, o Options, sizeHint int64) (*outputFile, error) {
	compress := o.Compress
	f, err := o.CreateTemp(filepath.Dir(final), ".convert-*.tmp")
	if err != nil {
		return nil, err
	}
	out := &outputFile{f: f, final: final, sum: sha256.New(), noSync: o.NoSync}
	var w io.Writer = &fileSink{f: f, h: out.sum, n: &out.n}
	switch compress {
	case CompressGzip:
		gz, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		out.comp, w = gz, gz
	case CompressZstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			out.abort()
			return nil, err
		}
		out.comp, w = zw, zw
	}
	out.sink = newAsyncWriter(w, 3, sizeHint)
	return out, nil
}

// commit flushes, syncs and renames the file into place.
func (o *outputFile) commit() (size int64, sum string, err error) {
	err = o.sink.close()
	o.sink = nil
	if err != nil {
		o.abort()
		return 0, "", fmt.Errorf("writing output: %w", err)
	}
	if o.comp != nil {
		if err := o.comp.Close(); err != nil {
			o.abort()
			return 0, "", fmt.Errorf("compressing output: %w", err)
		}
	}
	if !o.noSync {
		if err := o.f.Sync(); err != nil {
			o.abort()
			return 0, "", fmt.Errorf("syncing output: %w", err)
		}
	}
	if err := o.f.Close(); err != nil {
		os.Remove(o.f.Name())
		return 0, "", err
	}
	if err := os.Chmod(o.f.Name(), 0o644); err != nil { // CreateTemp makes 0600
		os.Remove(o.f.Name())
		return 0, "", err
	}
	if err := os.Rename(o.f.Name(), o.final); err != nil {
		os.Remove(o.f.Name())
		return 0, "", err
	}
	return o.n, hex.EncodeToString(o.sum.Sum(nil)), nil
}

// abort discards the file.
func (o *outputFile) abort() {
	if o.sink != nil {
		_ = o.sink.close()
		o.sink = nil
	}
	o.f.Close()
	os.Remove(o.f.Name())
}
