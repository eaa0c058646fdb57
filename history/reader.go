package history

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxLineBytes is the longest record line a Reader accepts. Records carry
// identifiers and short details, never message bodies, so a longer line is
// corruption, not data.
const MaxLineBytes = 1 << 20

// LineError is a malformed or unreadable line of a history.
type LineError struct {
	Name string // the history's name, usually its path
	Line int    // 1-based line number
	Err  error
}

// Error formats the error as "name:line: reason".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// Reader reads a history record by record, in constant memory.
type Reader struct {
	name   string
	sc     *bufio.Scanner
	dec    fastDecoder
	slow   bool // tests: encoding/json alone, the fast decoder's reference
	line   int
	header Record
}

// NewReader reads the header of the history in r and returns a Reader
// positioned after it. name is used in error messages.
func NewReader(name string, r io.Reader) (*Reader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	rd := &Reader{name: name, sc: sc}
	h, err := rd.next()
	if err == io.EOF {
		return nil, &LineError{Name: name, Line: 1, Err: errors.New("empty history: no header record")}
	}
	if err != nil {
		return nil, err
	}
	if h.Type != TypeHeader {
		return nil, &LineError{Name: name, Line: rd.line, Err: fmt.Errorf("first record is %q, want a header", h.Type)}
	}
	rd.header = h
	return rd, nil
}

// Header returns the history's header record.
func (r *Reader) Header() Record { return r.header }

// Line returns the line number of the record last returned.
func (r *Reader) Line() int { return r.line }

// Next returns the next record, or io.EOF after the last one. A malformed
// line yields a *LineError naming it; a truncated last line (a run that
// crashed mid-write) is reported the same way.
func (r *Reader) Next() (Record, error) {
	rec, err := r.next()
	if err == nil && rec.Type == TypeHeader {
		return Record{}, &LineError{Name: r.name, Line: r.line, Err: errors.New("second header record")}
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	for r.sc.Scan() {
		r.line++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec Record
		decode := r.dec.decode
		if r.slow {
			decode = DecodeLine
		}
		if err := decode(b, &rec); err != nil {
			return Record{}, &LineError{Name: r.name, Line: r.line, Err: err}
		}
		rec = rec.Clone() // the fast decoder's strings alias the scanner's buffer
		if err := rec.Validate(); err != nil {
			return Record{}, &LineError{Name: r.name, Line: r.line, Err: err}
		}
		return rec, nil
	}
	if err := r.sc.Err(); err != nil {
		return Record{}, &LineError{Name: r.name, Line: r.line + 1, Err: fmt.Errorf("read: %w", err)}
	}
	return Record{}, io.EOF
}

// Each reads every record of the history file at path, in order, calling fn
// for each. It stops at the first error from the file or from fn.
func Each(path string, fn func(Record) error) (Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return Record{}, fmt.Errorf("open history: %w", err)
	}
	defer f.Close()
	rd, err := NewReader(path, f)
	if err != nil {
		return Record{}, err
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return rd.Header(), nil
		}
		if err != nil {
			return rd.Header(), err
		}
		if err := fn(rec); err != nil {
			return rd.Header(), fmt.Errorf("%s:%d: %w", path, rd.Line(), err)
		}
	}
}

// ReadAll reads every record of the history in r, the header first, into
// memory: for small histories and tests. name is used in errors.
func ReadAll(name string, r io.Reader) ([]Record, error) {
	rd, err := NewReader(name, r)
	if err != nil {
		return nil, err
	}
	recs := []Record{rd.Header()}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}
