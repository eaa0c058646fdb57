package check

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/mailchaos/mailchaos/loadgen/history"
)

// The history package's Reader decodes each line with encoding/json, about
// 4 µs a line: 16 s for a million-message history. The checkers need the
// same records in a fraction of that, so this file holds a fast decoder for
// the common shape of an op/seen/final/event line. It accepts only what it
// is sure of (plain ASCII or valid UTF-8 strings without escapes, integers,
// known lower-case keys, each at most once) and hands every other line to
// encoding/json exactly as history.Reader does, so the two agree on every
// input (FuzzDecodeAgrees checks this) and errors are the reader's.
//
// Strings of a fast-decoded record alias the line buffer: they are valid
// until the next line is read. The checker copies whatever it keeps.

// lineSource feeds records to fn in history order. line is 1-based. The
// record and its strings are valid only during the call.
type lineSource func(fn func(line int64, rec *history.Record) error) (history.Record, error)

// fileSource streams a history from r, header first (fn sees line 1 = the
// header too, with Type header).
func readerSource(name string, open func() (io.ReadCloser, error)) lineSource {
	return func(fn func(int64, *history.Record) error) (history.Record, error) {
		rc, err := open()
		if err != nil {
			return history.Record{}, err
		}
		defer rc.Close()
		return scanHistory(name, rc, fn)
	}
}

// scanHistory is history.Reader's loop with the fast decoder in front, run
// as a pipeline so that decoding, the costliest part, uses every core: a
// reader goroutine cuts the input into chunks of whole lines, a pool of
// workers decodes and validates chunks concurrently, and the caller's
// goroutine hands the records to fn strictly in file order (chunk by chunk,
// waiting for each to be decoded). Records of a chunk stay valid until fn
// has seen the whole chunk; the chunk is then reused.
func scanHistory(name string, r io.Reader, fn func(int64, *history.Record) error) (history.Record, error) {
	return scanHistoryN(name, r, fn, scanWorkers(), chunkBytes)
}

// chunkBytes is the reader's buffer size and so the usual size of a chunk:
// about a thousand records, small enough to keep every worker busy.
const chunkBytes = 256 << 10

// scanWorkers is how many goroutines decode: one per usable core, at
// least two so that decoding overlaps the checker even on one core.
func scanWorkers() int { return min(max(runtime.GOMAXPROCS(0), 2), 8) }

// chunk is a run of whole lines, then their decoded records and the memory
// the records' strings use.
type chunk struct {
	buf     []byte   // the lines, as read
	first   int64    // line number of buf's first line
	scratch []byte   // unescaped strings
	strs    []string // rcpt and flags slices
	recs    []history.Record
	lines   []int64
	err     error         // after recs: the line that failed to decode or validate
	done    chan struct{} // a worker has decoded the chunk
}

// scanHistoryN is scanHistory with workers decoders and a reader buffer of
// bufBytes (tests vary both so that chunk edges fall everywhere).
func scanHistoryN(name string, r io.Reader, fn func(int64, *history.Record) error, workers, bufBytes int) (history.Record, error) {
	work := make(chan *chunk, workers)
	order := make(chan *chunk, 2*workers+2)
	free := make(chan *chunk, 3*workers+4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErr error // set before order is closed
	wg.Add(1 + workers)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(work)
		readErr = readChunks(name, r, bufBytes, work, order, free, stop)
	}()
	for range workers {
		go func() {
			defer wg.Done()
			var d fastDecoder
			d.keep = true
			for c := range work {
				decodeChunk(name, &d, c)
				c.done <- struct{}{}
			}
		}()
	}
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	defer wg.Wait()
	defer halt() // fn panicked or failed: let the reader and workers go
	var header history.Record
	haveHeader := false
	var err error
	for c := range order {
		if err != nil {
			continue // draining after a failure
		}
		<-c.done
		for i := range c.recs {
			rec := &c.recs[i]
			line := c.lines[i]
			if !haveHeader {
				if rec.Type != history.TypeHeader {
					err = &history.LineError{Name: name, Line: int(line), Err: fmt.Errorf("first record is %q, want a header", rec.Type)}
					break
				}
				header = cloneHeader(*rec)
				haveHeader = true
			} else if rec.Type == history.TypeHeader {
				err = &history.LineError{Name: name, Line: int(line), Err: errors.New("second header record")}
				break
			}
			if e := fn(line, rec); e != nil {
				err = fmt.Errorf("%s:%d: %w", name, line, e)
				break
			}
		}
		if err == nil {
			err = c.err
		}
		if err != nil {
			halt()
			continue
		}
		select {
		case free <- c:
		default:
		}
	}
	if err != nil {
		return header, err
	}
	if readErr != nil {
		return header, readErr
	}
	if !haveHeader {
		return header, &history.LineError{Name: name, Line: 1, Err: errors.New("empty history: no header record")}
	}
	return header, nil
}

// readChunks reads r into chunks of whole lines and sends each to a worker
// (work) and to the caller (order), in file order. bufio.Scanner does the
// reading with a split function that returns every complete line it holds
// at once, so a line that does not fit, a read error after a partial last
// line or a reader that makes no progress end the history exactly as they
// do in history.Reader, whose Scanner returns one line at a time. It
// returns the read error, naming the line after the last one read.
func readChunks(name string, r io.Reader, bufBytes int, work, order chan<- *chunk, free <-chan *chunk, stop <-chan struct{}) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(bufBytes, history.MaxLineBytes)), history.MaxLineBytes)
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
		return &history.LineError{Name: name, Line: int(line + 1), Err: fmt.Errorf("read: %w", err)}
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
		c.recs = append(c.recs, history.Record{})
		rec := &c.recs[len(c.recs)-1]
		err := d.decode(raw[:len(raw):len(raw)], rec)
		if err == nil {
			err = rec.Validate()
		}
		if err != nil {
			c.recs = c.recs[:len(c.recs)-1]
			c.err = &history.LineError{Name: name, Line: int(line), Err: err}
			return
		}
		c.lines = append(c.lines, line)
	}
}

func cloneHeader(r history.Record) history.Record {
	return history.Record{Type: r.Type, Version: r.Version, RunID: clone(r.RunID), Seed: r.Seed, Scenario: clone(r.Scenario), BaseTime: r.BaseTime}
}

func clone(s string) string { return string([]byte(s)) }

// fastDecoder decodes record lines. Unless keep is set its slices are
// reused between lines; with keep, the strings and slices of earlier lines
// stay valid (scratch and strs only grow, until the owner resets them).
type fastDecoder struct {
	keep    bool
	rcpt    []string
	flags   []string
	scratch []byte
	strs    []string
}

// decode fills rec from line, by the fast path when it can and by
// encoding/json (as history.Reader does) otherwise.
func (d *fastDecoder) decode(line []byte, rec *history.Record) error {
	if d.fast(line, rec) {
		return nil
	}
	*rec = history.Record{}
	return slowDecode(line, rec)
}

// slowDecode is exactly history.Reader's decoding of one trimmed line.
func slowDecode(b []byte, rec *history.Record) error { return history.DecodeLine(b, rec) }

// Key bits, to refuse (hand to the slow path) a key given twice.
const (
	kType = 1 << iota
	kClient
	kKind
	kName
	kTarget
	kStart
	kEnd
	kScope
	kAttempt
	kOutcome
	kClass
	kStage
	kDetail
	kMsgID
	kRcpt
	kBody
	kSize
	kMailbox
	kUIDValidity
	kUID
	kFlags
)

type scanner struct {
	b       []byte
	i       int
	scratch []byte // unescaped strings; cap >= len(b), so never reallocated
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		// Histories are compact JSON: one compare settles most calls.
		if c := s.b[s.i]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return
		}
		s.i++
	}
}

// str reads a JSON string. Simple escapes (\\ \" \/ \n \r \t \b \f) are
// decoded into scratch, which the caller sized to the line so it never
// reallocates mid-line; \u escapes and anything else go to the slow path.
func (s *scanner) str() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i + 1
	// Common case: the first byte that is not plain ASCII is the closing
	// quote (one pass, 8 bytes at a time).
	if q := plainEnd(s.b, start); q < len(s.b) && s.b[q] == '"' {
		s.i = q + 1
		if q == start {
			return "", true
		}
		return unsafe.String(&s.b[start], q-start), true
	}
	ascii := true
	esc := false
	j := start
	for ; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			esc = true
			j++
			if j >= len(s.b) {
				return "", false
			}
			switch s.b[j] {
			case '\\', '"', '/', 'n', 'r', 't', 'b', 'f':
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	if j >= len(s.b) {
		return "", false
	}
	s.i = j + 1
	v := s.b[start:j]
	if !ascii && !utf8.Valid(v) {
		return "", false
	}
	if esc {
		from := len(s.scratch)
		for k := 0; k < len(v); k++ {
			c := v[k]
			if c == '\\' {
				k++
				c = v[k]
				switch c {
				case 'n':
					c = '\n'
				case 'r':
					c = '\r'
				case 't':
					c = '\t'
				case 'b':
					c = '\b'
				case 'f':
					c = '\f'
				}
			}
			s.scratch = append(s.scratch, c)
		}
		v = s.scratch[from:]
	}
	if len(v) == 0 {
		return "", true
	}
	return unsafe.String(&v[0], len(v)), true
}

// notPlain flags, in the high bit of each byte of the little-endian word
// x, the bytes that are a quote, a backslash, a control character or
// non-ASCII: the high bit of q or bs minus one (a zero byte: quote,
// backslash), of x - 0x20 borrowing (control), of x itself (non-ASCII). A
// borrow can only flag bytes above a flagged one, so the lowest flag is
// exact; the others may not be.
func notPlain(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(lo*'"'), x^(lo*'\\')
	return (x | ((x - lo*0x20) &^ x) | ((q - lo) &^ q) | ((bs - lo) &^ bs)) & hi
}

// plainEnd returns the index of the first byte of b at or after i that is
// a quote, a backslash, a control character (< 0x20) or non-ASCII (>=
// 0x80), or len(b) if there is none.
func plainEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := notPlain(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return i
}

// int reads a JSON integer that fits in bits (signed or not); ok=false for
// fractions, exponents, overflow and anything encoding/json would treat
// differently.
func (s *scanner) int(signed bool, bits uint) (int64, bool) {
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		if !signed {
			return 0, false
		}
		neg = true
		s.i++
	}
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		if s.i-start >= 18 {
			return 0, false
		}
		v = v*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	// At most 18 digits were read, so v fits in 63 bits; check the field.
	lim := uint64(1) << (bits - 1)
	if !signed {
		lim <<= 1
	}
	if bits < 64 && v >= lim {
		return 0, false
	}
	if neg {
		if v == 0 {
			return 0, false // "-0": let encoding/json decide
		}
		return -int64(v), true
	}
	return int64(v), true
}

// strs reads an array of strings into buf[:0].
func (s *scanner) strs(buf []string) ([]string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return nil, false
	}
	s.i++
	out := buf[:0]
	if out == nil {
		out = make([]string, 0, 4)
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return out, true
	}
	for {
		s.ws()
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return out, true
		default:
			return nil, false
		}
	}
}

// fast decodes the common record shapes. It returns false, leaving rec in
// any state, when the line needs encoding/json.
func (d *fastDecoder) fast(line []byte, rec *history.Record) bool {
	*rec = history.Record{}
	if !d.keep {
		d.scratch = d.scratch[:0]
	}
	if cap(d.scratch)-len(d.scratch) < len(line) {
		// Strings already handed out keep the old block alive.
		d.scratch = make([]byte, 0, max(len(line), 64<<10))
	}
	s := scanner{b: line, scratch: d.scratch[len(d.scratch):]}
	if !d.parse(&s, rec) {
		return false
	}
	if d.keep {
		d.scratch = d.scratch[:len(d.scratch)+len(s.scratch)]
		if len(rec.Rcpt) > 0 {
			rec.Rcpt = d.keepStrs(rec.Rcpt)
		}
		if len(rec.Flags) > 0 {
			rec.Flags = d.keepStrs(rec.Flags)
		}
	}
	return true
}

// keepStrs copies v into strs so that it outlives the next line.
func (d *fastDecoder) keepStrs(v []string) []string {
	start := len(d.strs)
	d.strs = append(d.strs, v...)
	return d.strs[start:len(d.strs):len(d.strs)]
}

// parse is fast's loop over the object's members.
func (d *fastDecoder) parse(s *scanner, rec *history.Record) bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	s.i++
	var seen uint32
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.ws()
		return s.i == len(s.b)
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		var bit uint32
		switch key {
		case "type":
			bit = kType
			v, ok := s.str()
			if !ok {
				return false
			}
			rec.Type = history.Type(v)
		case "client":
			bit = kClient
			if rec.Client, ok = s.str(); !ok {
				return false
			}
		case "kind":
			bit = kKind
			if rec.Kind, ok = s.str(); !ok {
				return false
			}
		case "name":
			bit = kName
			if rec.Name, ok = s.str(); !ok {
				return false
			}
		case "target":
			bit = kTarget
			if rec.Target, ok = s.str(); !ok {
				return false
			}
		case "start":
			bit = kStart
			v, ok := s.int(true, 64)
			if !ok {
				return false
			}
			rec.Start = history.Offset(v)
		case "end":
			bit = kEnd
			v, ok := s.int(true, 64)
			if !ok {
				return false
			}
			rec.End = history.Offset(v)
		case "scope":
			bit = kScope
			v, ok := s.str()
			if !ok {
				return false
			}
			rec.Scope = history.Scope(v)
		case "attempt":
			bit = kAttempt
			v, ok := s.int(true, strconv64)
			if !ok {
				return false
			}
			rec.Attempt = int(v)
		case "outcome":
			bit = kOutcome
			v, ok := s.str()
			if !ok {
				return false
			}
			rec.Outcome = history.Outcome(v)
		case "class":
			bit = kClass
			if rec.Class, ok = s.str(); !ok {
				return false
			}
		case "stage":
			bit = kStage
			if rec.Stage, ok = s.str(); !ok {
				return false
			}
		case "detail":
			bit = kDetail
			if rec.Detail, ok = s.str(); !ok {
				return false
			}
		case "msg_id":
			bit = kMsgID
			if rec.MsgID, ok = s.str(); !ok {
				return false
			}
		case "rcpt":
			bit = kRcpt
			v, ok := s.strs(d.rcpt)
			if !ok {
				return false
			}
			d.rcpt = v
			rec.Rcpt = v
		case "body_sha256":
			bit = kBody
			if rec.BodySHA256, ok = s.str(); !ok {
				return false
			}
		case "size":
			bit = kSize
			v, ok := s.int(true, strconv64)
			if !ok {
				return false
			}
			rec.Size = int(v)
		case "mailbox":
			bit = kMailbox
			if rec.Mailbox, ok = s.str(); !ok {
				return false
			}
		case "uidvalidity":
			bit = kUIDValidity
			v, ok := s.int(false, 32)
			if !ok {
				return false
			}
			rec.UIDValidity = uint32(v)
		case "uid":
			bit = kUID
			v, ok := s.int(false, 32)
			if !ok {
				return false
			}
			rec.UID = uint32(v)
		case "flags":
			bit = kFlags
			v, ok := s.strs(d.flags)
			if !ok {
				return false
			}
			d.flags = v
			rec.Flags = v
		default:
			// Header fields, other spellings, unknown keys: encoding/json
			// decides (it matches keys case-insensitively).
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.ws()
			return s.i == len(s.b)
		default:
			return false
		}
	}
}

// strconv64 is the bit size of int on this platform.
const strconv64 = 32 << (^uint(0) >> 63)
