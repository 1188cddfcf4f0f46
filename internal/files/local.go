package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Local is Storage on the local file system: an object is the file
// Dir/<key>. Keys are "<package id>/<file name>"; anything else is refused,
// so no key can reach outside Dir.
type Local struct {
	Dir string

	createTemp func(dir, pattern string) (*os.File, error) // os.CreateTemp; tests meet a full disk through it
}

var _ Storage = Local{}

// ErrBadKey: a key that is not "<folder>/<name>" of clean segments.
var ErrBadKey = errors.New("files: bad storage key")

// checkKey refuses anything but "<folder>/<name>" of clean segments, on
// every driver.
func checkKey(key string) error {
	dir, name, ok := strings.Cut(key, "/")
	if !ok || dir == "" || name == "" || strings.Contains(name, "/") || path.Clean(key) != key ||
		dir == "." || dir == ".." || name == "." || name == ".." || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return nil
}

func (l Local) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	dir, name, _ := strings.Cut(key, "/")
	return filepath.Join(l.Dir, dir, name), nil
}

// Put implements Storage: a rename when path is on the same file system
// (work_dir beside dir, as documented), a synced copy otherwise. The
// download handler serves the artifact's type and encoding, so meta is not
// kept.
func (l Local) Put(_ context.Context, key, src string, _ Meta) error {
	dst, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err == nil {
		return syncDir(filepath.Dir(dst))
	}
	if err := copySynced(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

// Ping implements Storage: a small file is written, synced and removed in
// Dir, so a missing or read-only folder, or a full disk, turns the daemon
// unready before a package fails on it.
func (l Local) Ping(context.Context) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("files: folder %s: %w", l.Dir, err)
	}
	createTemp := l.createTemp
	if createTemp == nil {
		createTemp = os.CreateTemp
	}
	f, err := createTemp(l.Dir, ".ping-*.tmp")
	if err != nil {
		return fmt.Errorf("files: folder %s: %w", l.Dir, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte{'\n'})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("files: folder %s: %w", l.Dir, err)
	}
	return nil
}

// Open implements Storage.
func (l Local) Open(_ context.Context, key string) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return localObject{File: f, info: ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}}, nil
}

type localObject struct {
	*os.File
	info ObjectInfo
}

func (o localObject) Info() ObjectInfo { return o.info }

// Delete implements Storage; the package folder goes once empty.
func (l Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_ = os.Remove(filepath.Dir(p)) // fails while other files remain: fine
	return nil
}

// List implements Storage: the files two levels below Dir.
func (l Local) List(_ context.Context, fn func(ObjectInfo) error) error {
	return walkFiles(l.Dir, 2, func(p string, depth int, info fs.FileInfo) error {
		if depth != 2 {
			return nil
		}
		rel, err := filepath.Rel(l.Dir, p)
		if err != nil {
			return nil
		}
		return fn(ObjectInfo{Key: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
	})
}

// copySynced copies src to dst through a temporary file in dst's folder,
// synced and renamed into place: dst is whole or absent.
func copySynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".put-*.tmp")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
