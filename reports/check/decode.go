package check

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// scanHistory is history.Reader's loop with the fast decoder in front. It
// runs as a two-stage pipeline: a goroutine reads, splits, decodes and
// validates lines into batches while the caller's goroutine hands the
// records to fn, in file order. Records of a batch stay valid until fn has
// seen the whole batch; the batch is then reused.
func scanHistory(name string, r io.Reader, fn func(int64, *history.Record) error) (history.Record, error) {
	full := make(chan *batch, 2)
	free := make(chan *batch, 4)
	stop := make(chan struct{})
	done := make(chan struct{})
	var header history.Record
	go func() {
		defer close(done)
		defer close(full)
		header = produce(name, r, full, free, stop)
	}()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	defer halt() // fn panicked: let the producer go
	var err error
	for b := range full {
		if err == nil {
			for i := range b.recs {
				if e := fn(b.lines[i], &b.recs[i]); e != nil {
					err = fmt.Errorf("%s:%d: %w", name, b.lines[i], e)
					halt()
					break
				}
			}
			if err == nil {
				err = b.err
			}
		}
		select {
		case free <- b:
		default:
		}
	}
	<-done
	return header, err
}

// batch is a run of decoded records and the memory their strings use.
type batch struct {
	buf     []byte   // the lines
	scratch []byte   // unescaped strings
	strs    []string // rcpt and flags slices
	recs    []history.Record
	lines   []int64
	err     error // after recs: the error that ended the history
}

const (
	batchRecords = 1024
	batchBytes   = 512 << 10
)

// produce reads the history into batches sent on full until the end, an
// error (sent as the last batch's err), or stop. It returns the header.
func produce(name string, r io.Reader, full chan<- *batch, free <-chan *batch, stop <-chan struct{}) history.Record {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256<<10), history.MaxLineBytes)
	d := fastDecoder{keep: true}
	var header history.Record
	haveHeader := false
	line := int64(0)
	var b *batch
	next := func() {
		select {
		case b = <-free:
		default:
			b = &batch{buf: make([]byte, 0, batchBytes+4096), recs: make([]history.Record, 0, batchRecords), lines: make([]int64, 0, batchRecords)}
		}
		b.buf, b.recs, b.lines, b.err = b.buf[:0], b.recs[:0], b.lines[:0], nil
		d.scratch, d.strs = b.scratch[:0], b.strs[:0]
	}
	send := func() bool {
		b.scratch, b.strs = d.scratch, d.strs
		select {
		case full <- b:
			b = nil
			return true
		case <-stop:
			return false
		}
	}
	fail := func(err error) history.Record {
		b.recs, b.lines = b.recs[:len(b.recs)-1], b.lines[:len(b.lines)-1]
		b.err = err
		send()
		return header
	}
	next()
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if len(b.recs) >= batchRecords || len(b.buf) >= batchBytes {
			if !send() {
				return header
			}
			next()
		}
		start := len(b.buf)
		b.buf = append(b.buf, raw...)
		l := b.buf[start:len(b.buf):len(b.buf)]
		b.recs = append(b.recs, history.Record{})
		b.lines = append(b.lines, line)
		rec := &b.recs[len(b.recs)-1]
		if err := d.decode(l, rec); err != nil {
			return fail(&history.LineError{Name: name, Line: int(line), Err: err})
		}
		if err := rec.Validate(); err != nil {
			return fail(&history.LineError{Name: name, Line: int(line), Err: err})
		}
		if !haveHeader {
			if rec.Type != history.TypeHeader {
				return fail(&history.LineError{Name: name, Line: int(line), Err: fmt.Errorf("first record is %q, want a header", rec.Type)})
			}
			header = cloneHeader(*rec)
			haveHeader = true
		} else if rec.Type == history.TypeHeader {
			return fail(&history.LineError{Name: name, Line: int(line), Err: errors.New("second header record")})
		}
	}
	if err := sc.Err(); err != nil {
		b.err = &history.LineError{Name: name, Line: int(line + 1), Err: fmt.Errorf("read: %w", err)}
	} else if !haveHeader {
		b.err = &history.LineError{Name: name, Line: 1, Err: errors.New("empty history: no header record")}
	}
	send()
	return header
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
func slowDecode(b []byte, rec *history.Record) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return fmt.Errorf("invalid record: %w", err)
	}
	if dec.More() {
		return errors.New("invalid record: trailing data after the JSON object")
	}
	return nil
}

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
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
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
	// Common case: the closing quote found by IndexByte, and no escape,
	// control or non-ASCII byte before it (checked 8 bytes at a time).
	if q := bytes.IndexByte(s.b[start:], '"'); q >= 0 && plainASCII(s.b[start:start+q]) {
		s.i = start + q + 1
		if q == 0 {
			return "", true
		}
		return unsafe.String(&s.b[start], q), true
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

// plainASCII reports whether b has no byte that is a backslash, a control
// character (< 0x20) or non-ASCII (>= 0x80).
func plainASCII(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		bs := x ^ (lo * '\\')
		// high bit of a byte: >= 0x80; (x - 0x20) borrows: < 0x20; bs zero: backslash.
		if (x|((x-lo*0x20)&^x)|((bs-lo)&^bs))&hi != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
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
