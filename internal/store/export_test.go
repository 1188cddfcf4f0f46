package store

import "context"

// ExecForTest runs a statement outside the Store's interface (tests that
// set up what only another binary would write).
func (s *sqlStore) ExecForTest(ctx context.Context, query string) error {
	_, err := s.db.ExecContext(ctx, query)
	return err
}
