package check

import (
	"context"
	"errors"
	"io"

	"github.com/mailchaos/mailchaos/loadgen/history"
)

// Run reads the history file at path, streaming it, and judges it under p.
// An error means the history could not be read (it names the line) or the
// policy is invalid; a history that proves a failure is a Verdict with
// Status Failure and a nil error.
func Run(ctx context.Context, path string, p Policy) (Verdict, error) {
	return Verdict{}, errors.New("check: not implemented yet")
}

// RunReader is Run over an open history; name is used in errors.
func RunReader(ctx context.Context, name string, r io.Reader, p Policy) (Verdict, error) {
	return Verdict{}, errors.New("check: not implemented yet")
}

// RunRecords judges an in-memory history. recs[0] must be the header
// record, as in a file; errors name the record as "record N" (1-based, like
// a line number).
func RunRecords(ctx context.Context, recs []history.Record, p Policy) (Verdict, error) {
	return Verdict{}, errors.New("check: not implemented yet")
}
