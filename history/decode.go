package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

// The one decoder of history lines. encoding/json takes about 4 µs a
// line: 16 s for a million-message history. The fast path below decodes
// the common shape of an op/seen/final/event line in a fraction of that.
// It accepts only what it is sure of (plain ASCII or valid UTF-8 strings
// with simple escapes, integers, known lower-case keys, each at most once)
// and hands every other line to encoding/json (DecodeLine), so the two
// agree on every input (FuzzDecodeAgrees checks this) and errors are
// encoding/json's.
//
// Strings of a fast-decoded record alias the line buffer: they are valid
// until the next line is read. A consumer copies whatever it keeps
// (Record.Clone).

// DecodeLine decodes one line of a history (without its newline) into
// rec with encoding/json: exactly one JSON object with no unknown key, and
// nothing after it but white space. It does not validate the record (see
// Record.Validate). It is the slow path of the decoder and the judge of
// what the fast path may accept.
func DecodeLine(line []byte, rec *Record) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return fmt.Errorf("invalid record: %w", err)
	}
	// Decoder.More is false before a '}' or ']', so `{...}}` would pass it:
	// what is left after the object must be white space.
	if rest := bytes.TrimSpace(line[min(dec.InputOffset(), int64(len(line))):]); len(rest) > 0 {
		return fmt.Errorf("invalid record: %q after the JSON object: one record per line, nothing after it", excerpt(rest))
	}
	return nil
}

// excerpt is the start of b, for a message.
func excerpt(b []byte) string {
	const n = 24
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

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
// encoding/json (as Reader does) otherwise.
func (d *fastDecoder) decode(line []byte, rec *Record) error {
	if d.fast(line, rec) {
		return nil
	}
	*rec = Record{}
	return slowDecode(line, rec)
}

// slowDecode is encoding/json's decoding of one trimmed line.
func slowDecode(b []byte, rec *Record) error { return DecodeLine(b, rec) }

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
func (d *fastDecoder) fast(line []byte, rec *Record) bool {
	*rec = Record{}
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
func (d *fastDecoder) parse(s *scanner, rec *Record) bool {
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
			rec.Type = Type(v)
		case "client":
			bit = kClient
			if rec.Client, ok = s.str(); !ok {
				return false
			}
		case "kind":
			bit = kKind
			var v string
			if v, ok = s.str(); !ok {
				return false
			}
			rec.Kind = Kind(v)
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
			rec.Start = Offset(v)
		case "end":
			bit = kEnd
			v, ok := s.int(true, 64)
			if !ok {
				return false
			}
			rec.End = Offset(v)
		case "scope":
			bit = kScope
			v, ok := s.str()
			if !ok {
				return false
			}
			rec.Scope = Scope(v)
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
			rec.Outcome = Outcome(v)
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
