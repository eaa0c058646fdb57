package history

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Scan streams the history in r to fn, one record at a time in file
// order, the header first (line 1, Type TypeHeader), and returns the
// header. It decodes and validates exactly as Reader does and fails on the
// same line with the same error, but several times faster: a reader
// goroutine cuts the input into chunks of whole lines, a pool of workers
// decodes them concurrently with the fast decoder, and the caller's
// goroutine hands the records to fn in order. The record and its strings
// are valid only during the call to fn: a consumer copies what it keeps.
// An error from fn ends the scan, wrapped with name and line; so does ctx
// being done (checked between chunks).
func Scan(ctx context.Context, name string, r io.Reader, fn func(line int64, rec *Record) error) (Record, error) {
	return scanN(ctx, name, r, fn, scanWorkers(), chunkBytes)
}

// chunkBytes is the reader's buffer size and so the usual size of a chunk:
// about a thousand records, small enough to keep every worker busy.
const chunkBytes = 256 << 10

// scanWorkers is how many goroutines decode: one per usable core, at
// least two so that decoding overlaps the consumer even on one core.
func scanWorkers() int { return min(max(runtime.GOMAXPROCS(0), 2), 8) }

// chunk is a run of whole lines, then their decoded records and the memory
// the records' strings use.
type chunk struct {
	buf     []byte   // the lines, as read
	first   int64    // line number of buf's first line
	scratch []byte   // unescaped strings
	strs    []string // rcpt and flags slices
	recs    []Record
	lines   []int64
	err     error         // after recs: the line that failed to decode or validate
	done    chan struct{} // a worker has decoded the chunk
}

// pipeline is the reader, the decoding workers and the channels between
// them and the consumer.
type pipeline struct {
	work    chan *chunk // to the workers
	order   chan *chunk // to the consumer, in file order
	free    chan *chunk // decoded and consumed: reusable
	stop    chan struct{}
	stopped bool
	wg      sync.WaitGroup
	readErr error // set before order is closed
}

// startPipeline starts the reader and workers decoders on r.
func startPipeline(name string, r io.Reader, workers, bufBytes int) *pipeline {
	p := &pipeline{
		work:  make(chan *chunk, workers),
		order: make(chan *chunk, 2*workers+2),
		free:  make(chan *chunk, 3*workers+4),
		stop:  make(chan struct{}),
	}
	p.wg.Add(1 + workers)
	go func() {
		defer p.wg.Done()
		defer close(p.order)
		defer close(p.work)
		p.readErr = readChunks(name, r, bufBytes, p.work, p.order, p.free, p.stop)
	}()
	for range workers {
		go func() {
			defer p.wg.Done()
			d := fastDecoder{keep: true}
			for c := range p.work {
				decodeChunk(name, &d, c)
				c.done <- struct{}{}
			}
		}()
	}
	return p
}

// halt lets the reader and the workers go (idempotent).
func (p *pipeline) halt() {
	if !p.stopped {
		p.stopped = true
		close(p.stop)
	}
}

// scanN is Scan with workers decoders and a reader buffer of bufBytes
// (tests vary both so that chunk edges fall everywhere).
func scanN(ctx context.Context, name string, r io.Reader, fn func(int64, *Record) error, workers, bufBytes int) (Record, error) {
	p := startPipeline(name, r, workers, bufBytes)
	defer p.wg.Wait()
	defer p.halt() // fn panicked or failed: let the reader and workers go
	var cons consumer
	cons.name, cons.fn = name, fn
	var err error
	for c := range p.order {
		if err != nil {
			continue // draining after a failure
		}
		if err = ctx.Err(); err != nil {
			err = fmt.Errorf("%s:%d: %w", name, c.first, err)
			p.halt()
			continue
		}
		<-c.done
		if err = cons.chunk(c); err != nil {
			p.halt()
			continue
		}
		select {
		case p.free <- c:
		default:
		}
	}
	switch {
	case err != nil:
		return cons.header, err
	case p.readErr != nil:
		return cons.header, p.readErr
	case !cons.haveHeader:
		return cons.header, &LineError{Name: name, Line: 1, Err: errors.New("empty history: no header record")}
	}
	return cons.header, nil
}

// consumer hands decoded records to fn, checking that the header comes
// first and only once.
type consumer struct {
	name       string
	fn         func(int64, *Record) error
	header     Record
	haveHeader bool
}

// chunk hands the records of c to fn; the error is the first of the
// header checks, fn and the chunk's own decoding error.
func (cs *consumer) chunk(c *chunk) error {
	for i := range c.recs {
		rec, line := &c.recs[i], c.lines[i]
		if !cs.haveHeader {
			if rec.Type != TypeHeader {
				return &LineError{Name: cs.name, Line: int(line), Err: fmt.Errorf("first record is %q, want a header", rec.Type)}
			}
			cs.header = rec.Clone()
			cs.haveHeader = true
		} else if rec.Type == TypeHeader {
			return &LineError{Name: cs.name, Line: int(line), Err: errors.New("second header record")}
		}
		if err := cs.fn(line, rec); err != nil {
			return fmt.Errorf("%s:%d: %w", cs.name, line, err)
		}
	}
	return c.err
}

// readChunks reads r into chunks of whole lines and sends each to a worker
// (work) and to the consumer (order), in file order. bufio.Scanner does
// the reading with a split function that returns every complete line it
// holds at once, so a line that does not fit, a read error after a
// partial last line or a reader that makes no progress end the history
// exactly as they do in Reader, whose Scanner returns one line at a time.
// It returns the read error, naming the line after the last one read.
func readChunks(name string, r io.Reader, bufBytes int, work, order chan<- *chunk, free <-chan *chunk, stop <-chan struct{}) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(bufBytes, MaxLineBytes)), MaxLineBytes)
	sc.Split(scanLineRuns)
	line := int64(0)
	for sc.Scan() {
		tok := sc.Bytes()
		var c *chunk
		select {
		case c = <-free:
		default:
			c = &chunk{done: make(chan struct{}, 1)}
		}
		c.buf = append(c.buf[:0], tok...)
		c.first = line + 1
		line += int64(bytes.Count(tok, []byte{'\n'}))
		if tok[len(tok)-1] != '\n' {
			line++ // the last line, without its newline
		}
		select {
		case work <- c:
		case <-stop:
			return nil
		}
		select {
		case order <- c:
		case <-stop:
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return &LineError{Name: name, Line: int(line + 1), Err: fmt.Errorf("read: %w", err)}
	}
	return nil
}

// scanLineRuns is a bufio.SplitFunc returning all complete lines in data,
// newlines included, as one token; at EOF the rest is the last line.
func scanLineRuns(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// decodeChunk splits c into lines and decodes and validates each non-blank
// one into c.recs; the first line that fails ends the chunk with c.err.
// Strings of the records alias c.buf and c.scratch.
func decodeChunk(name string, d *fastDecoder, c *chunk) {
	c.recs, c.lines, c.err = c.recs[:0], c.lines[:0], nil
	d.scratch, d.strs = c.scratch[:0], c.strs[:0]
	defer func() { c.scratch, c.strs = d.scratch, d.strs }()
	buf := c.buf
	for line := c.first; len(buf) > 0; line++ {
		raw := buf
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			raw, buf = buf[:i], buf[i+1:]
		} else {
			buf = nil
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		c.recs = append(c.recs, Record{})
		rec := &c.recs[len(c.recs)-1]
		err := d.decode(raw[:len(raw):len(raw)], rec)
		if err == nil {
			err = rec.Validate()
		}
		if err != nil {
			c.recs = c.recs[:len(c.recs)-1]
			c.err = &LineError{Name: name, Line: int(line), Err: err}
			return
		}
		c.lines = append(c.lines, line)
	}
}
