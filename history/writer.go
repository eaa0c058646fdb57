package history

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// FlushInterval bounds how much of a history a crash can lose: buffered
// records reach the file at least this often.
const FlushInterval = time.Second

// Clock turns instants into offsets from one base time. Offsets come from the
// monotonic clock, so they are immune to wall-clock steps.
type Clock struct {
	base time.Time
}

// NewClock returns a clock whose base time is now.
func NewClock() Clock { return Clock{base: time.Now()} }

// Base returns the base time (with its monotonic reading).
func (c Clock) Base() time.Time { return c.base }

// Now returns the offset of the current instant.
func (c Clock) Now() Offset { return Offset(time.Since(c.base)) }

// At returns the offset of t, which should carry a monotonic reading
// (a time.Now() value) for the offset to be exact.
func (c Clock) At(t time.Time) Offset { return Offset(t.Sub(c.base)) }

// Writer appends records to a history. It is safe for concurrent use by
// every producer of a run. Memory use is bounded by its buffer, however long
// the run: records are streamed, never kept.
type Writer struct {
	clock Clock

	mu     sync.Mutex
	buf    *bufio.Writer
	line   []byte // the record being encoded
	closer io.Closer
	err    error // first write error; later writes are dropped and Close reports it
	closed bool

	stop chan struct{}
	done chan struct{}
}

// Header describes the run a history belongs to.
type Header struct {
	RunID    string
	Seed     int64
	Scenario string
}

// Create creates (or truncates) the file at path and starts a history in it.
func Create(path string, clock Clock, h Header) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create history: %w", err)
	}
	w, err := NewWriter(f, clock, h)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.closer = f
	return w, nil
}

// NewWriter starts a history on out: it writes the header at once and then
// flushes buffered records every FlushInterval until Close.
func NewWriter(out io.Writer, clock Clock, h Header) (*Writer, error) {
	if h.RunID == "" {
		return nil, fmt.Errorf("start history: run id is empty")
	}
	buf := bufio.NewWriterSize(out, 64<<10)
	w := &Writer{
		clock: clock,
		buf:   buf,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	hdr := Record{
		Type:     TypeHeader,
		Version:  SchemaVersion,
		RunID:    h.RunID,
		Seed:     h.Seed,
		Scenario: h.Scenario,
		BaseTime: clock.Base().Round(0).UTC(),
	}
	if err := w.encode(&hdr); err != nil {
		return nil, fmt.Errorf("write history header: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return nil, fmt.Errorf("write history header: %w", err)
	}
	go w.flushLoop()
	return w, nil
}

// Clock returns the clock the history's offsets are taken from.
func (w *Writer) Clock() Clock { return w.clock }

// Now returns the current offset on the history's clock.
func (w *Writer) Now() Offset { return w.clock.Now() }

func (w *Writer) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if w.err == nil && !w.closed {
				w.err = w.buf.Flush()
			}
			w.mu.Unlock()
		}
	}
}

// Write appends one record. It is the single entry point for every record
// type; the helpers below fill in Type. A record that fails validation is
// not written and the error is returned, so producers find their bugs in
// tests rather than in a checker's confusion.
func (w *Writer) Write(r Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("write history record: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("write history record: history is closed")
	}
	if w.err != nil {
		return fmt.Errorf("write history record: %w", w.err)
	}
	if err := w.encode(&r); err != nil {
		w.err = err
		return fmt.Errorf("write history record: %w", err)
	}
	return nil
}

// encode writes r as one line into the buffer; w.mu must be held (or w not
// yet shared).
func (w *Writer) encode(r *Record) error {
	var err error
	if w.line, err = AppendRecord(w.line[:0], r); err != nil {
		return err
	}
	_, err = w.buf.Write(w.line)
	return err
}

// Op records an operation (Type is set to TypeOp).
func (w *Writer) Op(r Record) error {
	r.Type = TypeOp
	return w.Write(r)
}

// Seen records an IMAP observation (Type is set to TypeSeen).
func (w *Writer) Seen(r Record) error {
	r.Type = TypeSeen
	return w.Write(r)
}

// Final records one message found by a final read (Type is set to TypeFinal).
func (w *Writer) Final(r Record) error {
	r.Type = TypeFinal
	return w.Write(r)
}

// Phase records the start of a phase of the run, now.
func (w *Writer) Phase(name Phase, attempt int, detail string) error {
	return w.PhaseOn(name, "", attempt, detail)
}

// PhaseOn records a phase change that concerns one target, such as the
// read of one replica (PhaseReplicaRead); Phase is PhaseOn with no target.
func (w *Writer) PhaseOn(name Phase, target string, attempt int, detail string) error {
	now := w.clock.Now()
	return w.Write(Record{Type: TypeEvent, Kind: KindPhase, Client: "scenario", Name: string(name), Target: target, Attempt: attempt, Detail: detail, Start: now, End: now})
}

// Resolve records what a plan resolved (a KindResolve event): asked is
// what the scenario wrote, targets what it picked in the stack.
func (w *Writer) Resolve(asked string, targets []string, detail string) error {
	now := w.clock.Now()
	return w.Write(Record{Type: TypeEvent, Kind: KindResolve, Client: "scenario", Name: asked, Target: strings.Join(targets, ","), Detail: detail, Start: now, End: now})
}

// Event records a fault event: kind is KindFaultInject or KindFaultHeal,
// start is when the call began and end when its effect was observed, err is
// the failure if it had none.
func (w *Writer) Event(kind Kind, name, target string, start, end time.Time, err error) error {
	r := Record{
		Type:    TypeEvent,
		Kind:    kind,
		Client:  "nemesis",
		Name:    name,
		Target:  target,
		Start:   w.clock.At(start),
		End:     w.clock.At(end),
		Outcome: OK,
	}
	if err != nil {
		r.Outcome = Fail
		r.Detail = err.Error()
	}
	return w.Write(r)
}

// Flush writes buffered records through to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.err = w.buf.Flush()
	return w.err
}

// Close flushes, stops the flusher and closes the file if the Writer opened
// it. It returns the first error the writer met. Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.closed = true
	if w.err == nil {
		w.err = w.buf.Flush()
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	if w.closer != nil {
		if err := w.closer.Close(); err != nil && w.err == nil {
			w.err = err
		}
	}
	return w.err
}
