package pipeline

import (
	"context"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Source is where a job's packages come from: a recurring-integration
// queue (dequeue.Queue) or package exports (exporter.Source). The runner
// takes items from it until it has none, and never asks which kind it is.
type Source interface {
	// Next returns the next item, or nil when there is none now.
	Next(ctx context.Context) (Item, error)
}

// Item is one package to bring in.
type Item interface {
	// Origin says where it came from, for its events and its records.
	Origin() dataexport.Source
	// Keys identify it before it is downloaded.
	Keys() store.MessageKeys
	// Redeliverable: the source may hand the same package out again under
	// another id (a queue does), so identical content is recognised.
	Redeliverable() bool
	// Fetch downloads it into dir. An *UpstreamFailure says the source
	// failed it for good: a DataExportFailed is committed instead.
	Fetch(ctx context.Context, dir string, progress func(received, total int64)) (*finops.Download, error)
	// Done acknowledges it once its results are committed, or it was
	// recognised as processed.
	Done(ctx context.Context) error
}

// UpstreamFailure is an item its source failed for good: FinOps reports no
// file for a message, refused or failed an export, or the export's package
// could not be had before the job's timeout.
type UpstreamFailure struct {
	Reason  datapackage.Reason
	Message string
}

func (f *UpstreamFailure) Error() string { return string(f.Reason) + ": " + f.Message }
