// Package corpus generates the messages mailchaos sends: realistic MIME mail
// built with github.com/emersion/go-message, every byte derived from the run's
// seed so that the same seed, run id and stream give byte-identical messages.
//
// Every message carries two headers that make the verdict possible without
// guessing:
//
//	X-Mailchaos-Id: <run>.<stream>.<seq>
//	X-Mailchaos-Body-Sha256: <hex SHA-256 of the body>
//
// The body is every byte after the blank line that ends the header, with CRLF
// line endings: exactly what IMAP BODY[TEXT] returns and exactly what the SMTP
// server holds once it has undone dot-stuffing. Generated bodies use CRLF
// only, contain no bare CR or LF and end with CRLF, so the DATA dot-encoder
// sends them unchanged apart from the stuffing it adds and the server removes.
//
// The package only builds bytes; it does no I/O and knows nothing of SMTP
// sessions. It is not a fuzzer: every message is valid MIME.
package corpus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The identity and integrity headers every message carries.
const (
	HeaderID         = "X-Mailchaos-Id"
	HeaderBodySHA256 = "X-Mailchaos-Body-Sha256"
)

// Shape is the MIME structure of a message.
type Shape string

// The shapes the generator produces.
const (
	ShapePlain       Shape = "plain"       // one text/plain part
	ShapeAlternative Shape = "alternative" // multipart/alternative: text/plain + text/html
	ShapeAttachment  Shape = "attachment"  // multipart/mixed: text + base64 attachments
)

// Options configures a Generator. The zero value of each field means its
// default (see Defaults).
type Options struct {
	Seed  int64  // drives every random choice
	RunID string // first part of X-Mailchaos-Id
	// Recipients are the addresses To and Cc are drawn from (the test users).
	Recipients []string
	// MedianSize is the median message size in bytes (default 20 KiB).
	MedianSize int
	// Sigma is the log-normal shape parameter: the standard deviation of
	// ln(size). 0 means the default (1.2); a negative value means every
	// message is MedianSize bytes (used by the benchmark).
	Sigma float64
	// MinSize and MaxSize clamp the sampled size (defaults 1 KiB and 4 MiB).
	MinSize, MaxSize int
	// MaxRecipients bounds To+Cc (default 3, at least 1).
	MaxRecipients int
	// Date is the Date header of sequence 0; later sequences add seconds.
	// Zero means 2026-01-01T00:00:00Z, so that default output is stable.
	Date time.Time
	// Weights of the shapes plain, alternative and attachment (default
	// 45/30/25). Messages larger than 256 KiB are always attachments, as big
	// mail is in practice.
	Weights [3]float64
}

// Defaults returns o with every zero field set to its default.
func (o Options) Defaults() Options {
	if o.MedianSize == 0 {
		o.MedianSize = 20 << 10
	}
	if o.Sigma == 0 {
		o.Sigma = 1.2
	}
	if o.MinSize == 0 {
		o.MinSize = 1 << 10
	}
	if o.MaxSize == 0 {
		o.MaxSize = 4 << 20
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = 3
	}
	if o.Date.IsZero() {
		o.Date = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Weights == [3]float64{} {
		o.Weights = [3]float64{45, 30, 25}
	}
	return o
}

// Validate reports every problem with o (after defaults) at once.
func (o Options) Validate() error {
	o = o.Defaults()
	var errs []error
	if o.RunID == "" {
		errs = append(errs, errors.New("corpus: run id is empty"))
	}
	if len(o.Recipients) == 0 {
		errs = append(errs, errors.New("corpus: no recipients"))
	}
	if o.MinSize < 512 {
		errs = append(errs, fmt.Errorf("corpus: min size %d is below 512 bytes (headers alone need that)", o.MinSize))
	}
	if o.MaxSize < o.MinSize {
		errs = append(errs, fmt.Errorf("corpus: max size %d below min size %d", o.MaxSize, o.MinSize))
	}
	if o.MedianSize < o.MinSize || o.MedianSize > o.MaxSize {
		errs = append(errs, fmt.Errorf("corpus: median size %d outside [%d, %d]", o.MedianSize, o.MinSize, o.MaxSize))
	}
	if o.MaxRecipients < 1 {
		errs = append(errs, fmt.Errorf("corpus: max recipients %d, want at least 1", o.MaxRecipients))
	}
	if math.IsNaN(o.Sigma) || math.IsInf(o.Sigma, 0) {
		errs = append(errs, fmt.Errorf("corpus: sigma %v, want a finite number", o.Sigma))
	}
	sum := 0.0
	for _, w := range o.Weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			errs = append(errs, fmt.Errorf("corpus: shape weight %v is not a finite number", w))
			continue
		}
		if w < 0 {
			errs = append(errs, fmt.Errorf("corpus: negative shape weight %v", w))
		}
		sum += w
	}
	if !(sum > 0) || math.IsInf(sum, 1) {
		errs = append(errs, fmt.Errorf("corpus: shape weights sum to %v, want a finite sum above zero", sum))
	}
	return errors.Join(errs...)
}

// Generator builds messages. It is safe for concurrent use: each message has
// its own random source derived from (seed, stream, seq), so the bytes do not
// depend on which goroutine builds them or in which order.
type Generator struct {
	o           Options
	ascii, utf8 *pool
	mailboxes   cache[string] // address → its mailbox as go-message formats it
	subject     []string      // encoded subject of each template without a sequence number
	folded      cache[[]byte] // header fields go-message folds, formatted once
	// subjectStamps[i][n] is the Subject of template i with an n-digit
	// sequence number, made at first use (see appendSubject).
	subjectStamps [][20]atomic.Pointer[stamp]
}

// New returns a Generator for o, or every problem with o.
func New(o Options) (*Generator, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.Defaults()
	o.Recipients = append([]string(nil), o.Recipients...)
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x6d61696c6368616f))
	g := &Generator{o: o, ascii: newPool(r, false), utf8: newPool(r, true),
		subjectStamps: make([][20]atomic.Pointer[stamp], len(subjects))}
	for _, s := range subjects {
		if strings.Contains(s, "%d") {
			s = ""
		} else {
			s = encodeText(s)
		}
		g.subject = append(g.subject, s)
	}
	return g, nil
}

// Options returns the generator's options with defaults applied.
func (g *Generator) Options() Options { return g.o }

// Message is one generated message.
type Message struct {
	ID         string   // the X-Mailchaos-Id value: <run>.<stream>.<seq>
	From       string   // header From and envelope sender
	To, Cc     []string // header recipients
	Rcpt       []string // envelope recipients: To then Cc
	Shape      Shape
	EightBit   bool   // the body has 8-bit text parts (send only with 8BITMIME)
	Bytes      []byte // the whole message, CRLF line endings, ends with CRLF
	BodyOffset int    // Bytes[BodyOffset:] is the body
	BodySHA256 string // hex SHA-256 of Bytes[BodyOffset:]

	pooled *[]byte // where Release puts Bytes back; nil: not from the pool
}

// Body returns the body: the bytes after the header's blank line.
func (m *Message) Body() []byte { return m.Bytes[m.BodyOffset:] }

// Size returns the message size in bytes.
func (m *Message) Size() int { return len(m.Bytes) }

// MessageID returns the X-Mailchaos-Id for a stream and sequence number.
func MessageID(runID, stream string, seq int) string {
	return runID + "." + stream + "." + strconv.Itoa(seq)
}

// rngFor derives the random source of one message from the FNV-1a hash of
// stream, a NUL and seq in decimal.
func (g *Generator) rngFor(stream string, seq int) *rand.Rand {
	var b [64]byte
	key := strconv.AppendInt(append(append(b[:0], stream...), 0), int64(seq), 10)
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return rand.New(rand.NewPCG(uint64(g.o.Seed), h))
}

// SampleSize draws one message size from the log-normal distribution of o
// (defaults applied by the caller), clamped to [MinSize, MaxSize].
func SampleSize(o Options, r *rand.Rand) int {
	if o.Sigma < 0 {
		return o.MedianSize
	}
	s := float64(o.MedianSize) * math.Exp(o.Sigma*r.NormFloat64())
	return int(math.Max(float64(o.MinSize), math.Min(float64(o.MaxSize), s)))
}

// Message builds message seq of stream, sent by from. eightBit says whether
// the server offered 8BITMIME: if so, non-ASCII text parts go as 8bit,
// otherwise as quoted-printable. The same arguments give the same bytes.
func (g *Generator) Message(stream string, seq int, from string, eightBit bool) (*Message, error) {
	m, err := g.sized(stream, seq, from, eightBit, g.build)
	if err != nil {
		return nil, err
	}
	m.seal()
	return m, nil
}

// buildFunc builds a message with the body budget reduced by over bytes, and
// returns the size it aimed at.
type buildFunc func(stream string, seq int, from string, eightBit bool, over int) (*Message, int, error)

// sized builds a message with build, and builds it again once if it missed
// its size by more than 5%.
func (g *Generator) sized(stream string, seq int, from string, eightBit bool, build buildFunc) (*Message, error) {
	m, size, err := build(stream, seq, from, eightBit, 0)
	if err != nil {
		return nil, err
	}
	// Encodings (quoted-printable, base64, HTML markup) make the first
	// estimate of the framing cost approximate: correct it once, from the
	// same random source, so the size distribution is the asked one.
	if d := m.Size() - size; d > size/20 || -d > size/20 {
		if m2, _, err := build(stream, seq, from, eightBit, d); err == nil {
			m.Release()
			m = m2
		}
	}
	return m, nil
}

// start draws what every message has before its header and body: its size,
// shape and recipients (distinct test users, To first, then Cc), from the
// message's own random source, which it returns for the rest.
func (g *Generator) start(stream string, seq int, from string) (*Message, *rand.Rand, int) {
	r := g.rngFor(stream, seq)
	o := g.o
	m := &Message{ID: MessageID(o.RunID, stream, seq), From: from}
	size := SampleSize(o, r)
	m.Shape = pickShape(o.Weights, size, r)
	n := 1 + r.IntN(min(o.MaxRecipients, len(o.Recipients)))
	perm := r.Perm(len(o.Recipients))
	nTo := 1 + r.IntN(n)
	m.Rcpt = make([]string, n)
	for i := range n {
		m.Rcpt[i] = o.Recipients[perm[i]]
	}
	m.To = m.Rcpt[:nTo:nTo]
	if n > nTo {
		m.Cc = m.Rcpt[nTo:]
	}
	return m, r, size
}

func pickShape(w [3]float64, size int, r *rand.Rand) Shape {
	if size > 256<<10 {
		return ShapeAttachment
	}
	x := r.Float64() * (w[0] + w[1] + w[2])
	switch {
	case x < w[0]:
		return ShapePlain
	case x < w[0]+w[1]:
		return ShapeAlternative
	default:
		return ShapeAttachment
	}
}

var asciiWords = strings.Fields(`the quick brown fox jumps over lazy dog mail
server queue relay delivery storage replica region failover upgrade message
client session retry budget window latency partition heal converge final read
lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor
incididunt ut labore et dolore magna aliqua report audit evidence invoice
meeting agenda quarterly budget project deadline review approved pending`)

var utf8Words = strings.Fields(`Grüße Köln Straße naïve café crème déjà vu
Ærøskøbing smörgåsbord Привет мир Почта 日本語 メール 東京 中文 邮件 Ελληνικά
ταχυδρομείο עברית العربية ½ € ©`)

// pool is a block of pre-generated prose lines (CRLF-terminated, at most 72
// bytes plus CRLF) that messages copy runs of lines from: generating text
// word by word per message would make the corpus, not the network, the
// bottleneck of a fast sender.
type pool struct {
	text  []byte
	lines []int // start offset of each line
}

const poolBytes = 256 << 10

func newPool(r *rand.Rand, nonASCII bool) *pool {
	p := &pool{}
	var b bytes.Buffer
	b.Grow(poolBytes + 128)
	line := 0
	p.lines = append(p.lines, 0)
	for b.Len() < poolBytes {
		var w string
		if nonASCII && r.IntN(8) == 0 {
			w = utf8Words[r.IntN(len(utf8Words))]
		} else {
			w = asciiWords[r.IntN(len(asciiWords))]
		}
		if line > 0 && line+1+len(w) > 72 {
			b.WriteString("\r\n")
			p.lines = append(p.lines, b.Len())
			line = 0
			if r.IntN(6) == 0 {
				b.WriteString("\r\n")
				p.lines = append(p.lines, b.Len())
			}
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	p.text = b.Bytes()
	return p
}

// appendText appends about n bytes of wrapped prose with CRLF line endings
// to dst: runs of 8 to 40 lines from random places of the pool. With
// nonASCII, about one word in eight is non-ASCII.
func (g *Generator) appendText(dst []byte, r *rand.Rand, n int, nonASCII bool) []byte {
	p := g.ascii
	if nonASCII {
		p = g.utf8
	}
	start := len(dst)
	for len(dst)-start < n {
		i := r.IntN(len(p.lines) - 1)
		j := min(i+8+r.IntN(32), len(p.lines)-1)
		chunk := p.text[p.lines[i]:p.lines[j]]
		if rest := n - (len(dst) - start); len(chunk) > rest {
			// Cut at a line end past the wanted length.
			k := bytes.Index(chunk[rest:], crlf)
			if k >= 0 {
				chunk = chunk[:rest+k+2]
			}
		}
		dst = append(dst, chunk...)
	}
	if !bytes.HasSuffix(dst[start:], crlf) {
		dst = append(dst, '\r', '\n')
	}
	return dst
}

var crlf = []byte("\r\n")

// appendHTML appends about n bytes of HTML: paragraphs of prose.
func (g *Generator) appendHTML(dst []byte, r *rand.Rand, n int, nonASCII bool) []byte {
	start := len(dst)
	dst = append(dst, "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n"...)
	for len(dst)-start < n {
		dst = append(dst, "<p>"...)
		k := len(dst)
		dst = g.appendText(dst, r, 200+r.IntN(400), nonASCII)
		for len(dst) > k && (dst[len(dst)-1] == '\r' || dst[len(dst)-1] == '\n') {
			dst = dst[:len(dst)-1]
		}
		dst = append(dst, "</p>\r\n"...)
	}
	return append(dst, "</body></html>\r\n"...)
}

// SplitBody returns the body of a raw message: the bytes after the first
// empty line (CRLF CRLF, or LF LF for LF-only input). ok is false if the
// message has no body separator.
func SplitBody(raw []byte) (body []byte, ok bool) {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[i+4:], true
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[i+2:], true
	}
	return nil, false
}

// BodySHA256 returns the hex SHA-256 of body, the form the history records.
func BodySHA256(body []byte) string {
	s := sha256.Sum256(body)
	return hex.EncodeToString(s[:])
}
