package dequeue

import (
	"context"
	"fmt"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
)

// Queue is a job's queue as a pipeline.Source: it yields the queued
// messages; an item is acknowledged (Done) once its results are committed.
type Queue struct {
	Src         *Source
	Job         string
	LegalEntity string
	// Poll is told each dequeue's result: message, empty or error.
	Poll func(result string)
}

var _ pipeline.Source = Queue{}

// Kind is the SourceKind of the events of a queue's packages.
const Kind = "dequeue"

// Next implements pipeline.Source.
func (q Queue) Next(ctx context.Context) (pipeline.Item, error) {
	m, err := q.Src.Dequeue(ctx)
	switch {
	case err != nil:
		q.Poll("error")
		return nil, fmt.Errorf("dequeue: %w", err)
	case m == nil:
		q.Poll("empty")
		return nil, nil
	}
	q.Poll("message")
	return queueItem{q: q, m: m}, nil
}

type queueItem struct {
	q Queue
	m *Message
}

func (i queueItem) Origin() dataexport.Source {
	return dataexport.Source{Job: i.q.Job, Kind: Kind, MessageID: i.m.CorrelationID, LegalEntity: i.q.LegalEntity}
}

func (i queueItem) Keys() store.MessageKeys {
	return store.MessageKeys{CorrelationID: i.m.CorrelationID, BlobID: i.m.BlobID}
}

// Redeliverable: FinOps redelivers unacknowledged messages, and may queue
// the same file twice.
func (i queueItem) Redeliverable() bool { return true }

func (i queueItem) Fetch(ctx context.Context, dir string, progress func(received, total int64)) (*finops.Download, error) {
	if reason, missing := i.m.FileMissing(); missing {
		return nil, &pipeline.UpstreamFailure{Reason: datapackage.ReasonDownloadFailed, Message: "FinOps reports no file for message " + i.m.CorrelationID + ": " + reason}
	}
	return i.q.Src.Download(ctx, i.m, dir, progress)
}

func (i queueItem) Done(ctx context.Context) error { return i.q.Src.Ack(ctx, i.m) }
