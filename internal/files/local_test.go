package files_test

import (
	"testing"

	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/files/filestest"
)

func TestLocalStorageConformance(t *testing.T) {
	t.Parallel()
	filestest.Run(t, func(t *testing.T) files.Storage { return files.Local{Dir: t.TempDir()} })
}
