package files

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound: no object under that key.
var ErrNotFound = errors.New("files: no such object")

// Storage keeps converted files under keys ("<package id>/<file name>").
// The local disk implements it (Local); object stores will. Every driver
// passes the suite in filestest.
type Storage interface {
	// Put stores the finished local file at path under key, taking it over
	// (the local file is gone afterwards), with meta for those who fetch it
	// from the store directly. It is durable when Put returns.
	Put(ctx context.Context, key, path string, meta Meta) error
	// Open returns the object for reading, seekable so that downloads can be
	// served with Range; ErrNotFound when there is none.
	Open(ctx context.Context, key string) (Object, error)
	// Delete removes the object; deleting a missing one is no error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object, in no particular order.
	List(ctx context.Context, fn func(ObjectInfo) error) error
	// Ping says whether the storage can be used now (readiness): the
	// folder takes a write, the bucket or container answers.
	Ping(ctx context.Context) error
}

// Meta is what an object store serves with an object.
type Meta struct {
	ContentType     string
	ContentEncoding string
}

// Object is a stored file opened for reading.
type Object interface {
	io.ReadSeekCloser
	Info() ObjectInfo
}

// ObjectInfo describes a stored file.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}
