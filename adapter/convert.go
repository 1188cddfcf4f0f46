package adapter

import (
	"context"
	"errors"
	"fmt"

	"github.com/exportbridge/exportbridge/internal/datapackage"
)

// ConvertOptions configures `exportbridge convert`.
type ConvertOptions struct {
	Format, Compress, Encoding string
}

// ConvertPackage converts a package file with no server or config. It
// returns the conversion and the exit code: 0 when every entity converted,
// 1 when any failed (with an error saying how many), 2 for bad options.
func ConvertPackage(ctx context.Context, pkg, outDir string, opt ConvertOptions) (*datapackage.Conversion, int, error) {
	o := datapackage.Options{Format: opt.Format, Compress: opt.Compress, Encoding: opt.Encoding}.WithDefaults()
	if ps := o.Validate(); len(ps) > 0 {
		return nil, 2, ps
	}
	conv, err := datapackage.Convert(ctx, pkg, outDir, o)
	var de *datapackage.Error
	if errors.As(err, &de) {
		return nil, 1, fmt.Errorf("package cannot be processed (%s): %w", de.Reason, err)
	}
	if err != nil {
		return nil, 1, err
	}
	if len(conv.Failures) > 0 {
		return conv, 1, fmt.Errorf("%d of %d entities failed", len(conv.Failures), len(conv.Failures)+len(conv.Results))
	}
	return conv, 0, nil
}
