package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mailchaos/mailchaos/history"
)

// lineSource feeds records to fn in history order, the header first
// (line 1); line is 1-based. The record and its strings are valid only
// during the call.
type lineSource func(ctx context.Context, fn func(line int64, rec *history.Record) error) (history.Record, error)

// readerSource streams a history with history.Scan from what open returns.
func readerSource(name string, open func() (io.ReadCloser, error)) lineSource {
	return func(ctx context.Context, fn func(int64, *history.Record) error) (history.Record, error) {
		rc, err := open()
		if err != nil {
			return history.Record{}, err
		}
		defer rc.Close()
		return history.Scan(ctx, name, rc, fn)
	}
}

// maxOpsPerEvidence bounds the operations cited per evidence item.
const maxOpsPerEvidence = 20

// ctxEvery is how many records pass between context checks.
const ctxEvery = 1 << 16

// Run reads the history file at path, streaming it, and judges it under p.
// An error means the history could not be read (a *history.LineError names
// the line) or the policy is invalid; a history that proves a failure is a
// Verdict with Status Failure and a nil error. The file is read a second
// time only when there is evidence to cite.
func Run(ctx context.Context, path string, p Policy) (Verdict, error) {
	src := readerSource(path, func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open history: %w", err)
		}
		return f, nil
	})
	hint := 0
	if st, err := os.Stat(path); err == nil {
		hint = int(st.Size() / 260) // a typical record line is 150-350 bytes
	}
	v, err := run(ctx, src, p, hint)
	v.History = path
	return v, err
}

// RunReader is Run over an open history; name is used in errors. It reads r
// once, so the evidence carries no operations unless r is also an
// io.Seeker (then it rewinds for the evidence pass).
func RunReader(ctx context.Context, name string, r io.Reader, p Policy) (Verdict, error) {
	passes := 0
	src := readerSource(name, func() (io.ReadCloser, error) {
		passes++
		if passes > 1 {
			s, ok := r.(io.Seeker)
			if !ok {
				return nil, errNoRewind
			}
			if _, err := s.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
		}
		return io.NopCloser(r), nil
	})
	return run(ctx, src, p, 0)
}

var errNoRewind = errors.New("history reader cannot rewind")

// RunRecords judges an in-memory history. recs[0] must be the header
// record, as in a file; errors name the record as "record N" (1-based, like
// a line number).
func RunRecords(ctx context.Context, recs []history.Record, p Policy) (Verdict, error) {
	src := func(_ context.Context, fn func(int64, *history.Record) error) (history.Record, error) {
		if len(recs) == 0 {
			return history.Record{}, &history.LineError{Name: "record", Line: 1, Err: errors.New("empty history: no header record")}
		}
		for i := range recs {
			r := recs[i]
			if err := r.Validate(); err != nil {
				return recs[0], &history.LineError{Name: "record", Line: i + 1, Err: err}
			}
			if (i == 0) != (r.Type == history.TypeHeader) {
				if i == 0 {
					return r, &history.LineError{Name: "record", Line: 1, Err: fmt.Errorf("first record is %q, want a header", r.Type)}
				}
				return recs[0], &history.LineError{Name: "record", Line: i + 1, Err: errors.New("second header record")}
			}
			if err := fn(int64(i+1), &r); err != nil {
				return recs[0], fmt.Errorf("record %d: %w", i+1, err)
			}
		}
		return recs[0], nil
	}
	return run(ctx, src, p, len(recs))
}

func run(ctx context.Context, src lineSource, p Policy, hint int) (Verdict, error) {
	ths, err := ParseThresholds(p.Thresholds)
	if err != nil {
		return Verdict{Status: Unknown, Reason: err.Error()}, err
	}
	md := newModel(p, hint)
	n := 0
	header, err := src(ctx, func(line int64, r *history.Record) error {
		if n++; n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if r.Type == history.TypeHeader {
			return nil
		}
		md.add(line, r)
		return nil
	})
	md.header = header
	if err != nil {
		return Verdict{Version: VerdictVersion, RunID: header.RunID, Scenario: header.Scenario, Seed: header.Seed, Status: Unknown, Reason: "history unreadable: " + err.Error()}, err
	}
	v := md.finish(ths)
	if err := cite(ctx, src, &v); err != nil && !errors.Is(err, errNoRewind) {
		return v, fmt.Errorf("collect evidence: %w", err)
	}
	return v, nil
}

// cite reads the history again, if any check's evidence names a message,
// and attaches to each such item the records of its message, bounded per
// item.
func cite(ctx context.Context, src lineSource, v *Verdict) error {
	want := map[string][]*Evidence{}
	for ci := range v.Checks {
		evs := v.Checks[ci].Evidence
		for i := range evs {
			if id := evs[i].MsgID; id != "" {
				want[id] = append(want[id], &evs[i])
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	n := 0
	_, err := src(ctx, func(line int64, r *history.Record) error {
		if n++; n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if r.MsgID == "" {
			return nil
		}
		idx, ok := want[r.MsgID]
		if !ok {
			return nil
		}
		c := r.Clone()
		ref := OpRef{Line: line, Type: c.Type, Kind: c.Kind, Client: c.Client, Target: c.Target, Scope: c.Scope, Attempt: c.Attempt, Outcome: c.Outcome,
			Class: c.Class, Stage: c.Stage, Mailbox: c.Mailbox, UID: c.UID, Start: c.Start, End: c.End}
		for _, e := range idx {
			if len(e.Ops) < maxOpsPerEvidence {
				e.Ops = append(e.Ops, ref)
			}
		}
		return nil
	})
	return err
}
