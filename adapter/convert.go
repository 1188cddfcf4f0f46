package adapter

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/exportbridge/exportbridge/internal/datapackage"
)

// ConvertOptions configures `exportbridge convert`.
type ConvertOptions struct {
	Format, Compress, Encoding string
}

// ConvertPackage converts a package file with no server or config, printing
// one line per entity. It returns the exit code: 0 when every entity
// converted, 1 when any failed, 2 for bad options.
func ConvertPackage(ctx context.Context, pkg, outDir string, opt ConvertOptions, w io.Writer) (int, error) {
	o := datapackage.Options{Format: opt.Format, Compress: opt.Compress, Encoding: opt.Encoding}.WithDefaults()
	if ps := o.Validate(); len(ps) > 0 {
		return 2, ps
	}
	conv, err := datapackage.Convert(ctx, pkg, outDir, o)
	var de *datapackage.Error
	if errors.As(err, &de) {
		return 1, fmt.Errorf("package cannot be processed (%s): %w", de.Reason, err)
	}
	if err != nil {
		return 1, err
	}
	for _, r := range conv.Results {
		fmt.Fprintf(w, "%-32s %-12s %10d records %12d bytes  sha256:%s  %s\n", r.Entity, r.SourceFormat, r.Records, r.Bytes, r.SHA256, r.Path)
	}
	for _, f := range conv.Failures {
		fmt.Fprintf(w, "%-32s FAILED (%s): %v\n", f.Entity, f.Reason, f)
	}
	if len(conv.Failures) > 0 {
		return 1, fmt.Errorf("%d of %d entities failed", len(conv.Failures), len(conv.Failures)+len(conv.Results))
	}
	return 0, nil
}
