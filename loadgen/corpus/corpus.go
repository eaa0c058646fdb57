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
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
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
	sum := 0.0
	for _, w := range o.Weights {
		if w < 0 {
			errs = append(errs, fmt.Errorf("corpus: negative shape weight %v", w))
		}
		sum += w
	}
	if sum <= 0 {
		errs = append(errs, errors.New("corpus: shape weights sum to zero"))
	}
	return errors.Join(errs...)
}

// Generator builds messages. It is safe for concurrent use: each message has
// its own random source derived from (seed, stream, seq), so the bytes do not
// depend on which goroutine builds them or in which order.
type Generator struct {
	o           Options
	ascii, utf8 *pool
}

// New returns a Generator for o, or every problem with o.
func New(o Options) (*Generator, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.Defaults()
	o.Recipients = append([]string(nil), o.Recipients...)
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x6d61696c6368616f))
	return &Generator{o: o, ascii: newPool(r, false), utf8: newPool(r, true)}, nil
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
}

// Body returns the body: the bytes after the header's blank line.
func (m *Message) Body() []byte { return m.Bytes[m.BodyOffset:] }

// Size returns the message size in bytes.
func (m *Message) Size() int { return len(m.Bytes) }

// MessageID returns the X-Mailchaos-Id for a stream and sequence number.
func MessageID(runID, stream string, seq int) string {
	return fmt.Sprintf("%s.%s.%d", runID, stream, seq)
}

// rngFor derives the random source of one message.
func (g *Generator) rngFor(stream string, seq int) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", stream, seq)
	return rand.New(rand.NewPCG(uint64(g.o.Seed), h.Sum64()))
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
	m, size, err := g.build(stream, seq, from, eightBit, 0)
	if err != nil {
		return nil, err
	}
	// Encodings (quoted-printable, base64, HTML markup) make the first
	// estimate of the framing cost approximate: correct it once, from the
	// same random source, so the size distribution is the asked one.
	if d := m.Size() - size; d > size/20 || -d > size/20 {
		if m2, _, err := g.build(stream, seq, from, eightBit, d); err == nil {
			m = m2
		}
	}
	return m, nil
}

func (g *Generator) build(stream string, seq int, from string, eightBit bool, over int) (*Message, int, error) {
	r := g.rngFor(stream, seq)
	o := g.o
	m := &Message{ID: MessageID(o.RunID, stream, seq), From: from}

	size := SampleSize(o, r)
	m.Shape = pickShape(o.Weights, size, r)

	// Recipients: distinct test users, To first, then Cc.
	n := 1 + r.IntN(min(o.MaxRecipients, len(o.Recipients)))
	perm := r.Perm(len(o.Recipients))
	nTo := 1 + r.IntN(n)
	for i := range n {
		a := o.Recipients[perm[i]]
		if i < nTo {
			m.To = append(m.To, a)
		} else {
			m.Cc = append(m.Cc, a)
		}
	}
	m.Rcpt = append(append([]string(nil), m.To...), m.Cc...)

	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Address: from}})
	h.SetAddressList("To", addrs(m.To))
	if len(m.Cc) > 0 {
		h.SetAddressList("Cc", addrs(m.Cc))
	}
	h.SetSubject(subject(r, seq))
	h.SetDate(o.Date.Add(time.Duration(seq) * time.Second))
	h.SetMessageID(m.ID + "@mailchaos.test")
	h.Set(HeaderID, m.ID)

	// Room left for the body, once headers and MIME framing (~600 bytes)
	// are paid for.
	budget := max(size-len(m.ID)*2-600-80*len(m.Rcpt)-over, 64)
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	buf.Grow(size + 1024)
	var err error
	switch m.Shape {
	case ShapePlain:
		err = g.writePlain(buf, h, r, budget, eightBit, &m.EightBit)
	case ShapeAlternative:
		err = g.writeAlternative(buf, h, r, budget, eightBit, &m.EightBit)
	default:
		err = g.writeAttachment(buf, h, r, budget, eightBit, &m.EightBit)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("build message %s: %w", m.ID, err)
	}
	if !bytes.HasSuffix(buf.Bytes(), crlf) {
		buf.Write(crlf)
	}
	raw := buf.Bytes()
	hdrEnd := bytes.Index(raw, []byte("\r\n\r\n"))
	if hdrEnd < 0 {
		return nil, 0, fmt.Errorf("build message %s: no header/body separator", m.ID)
	}
	body := raw[hdrEnd+4:]
	sum := sha256.Sum256(body)
	m.BodySHA256 = hex.EncodeToString(sum[:])
	// The hash header can only be known once the body exists, so it is
	// spliced in as the header's last field.
	out := make([]byte, 0, len(raw)+len(HeaderBodySHA256)+len(m.BodySHA256)+6)
	out = append(out, raw[:hdrEnd+2]...)
	out = append(out, HeaderBodySHA256+": "...)
	out = append(out, m.BodySHA256...)
	out = append(out, "\r\n\r\n"...)
	m.BodyOffset = len(out)
	m.Bytes = append(out, body...)
	return m, size, nil
}

// bufs holds the buffers messages are built in before the hash header is
// spliced into their final, exactly sized copy.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func addrs(l []string) []*mail.Address {
	out := make([]*mail.Address, len(l))
	for i, a := range l {
		out[i] = &mail.Address{Address: a}
	}
	return out
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

var subjects = []string{
	"Quarterly report", "Re: meeting agenda", "Invoice %d", "Fwd: project update",
	"Grüße aus Köln %d", "Café crème et déjà vu", "Привет из почты %d", "日本語のテスト %d",
	"Ελληνικά θέματα", "Status of ticket #%d", "Smörgåsbord at noon", "½ price offer €%d",
}

func subject(r *rand.Rand, seq int) string {
	s := subjects[r.IntN(len(subjects))]
	if strings.Contains(s, "%d") {
		s = fmt.Sprintf(s, seq)
	}
	return s
}

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

// scratch buffers for the parts of a message being built: their bytes are
// copied into the message, so they are reused across messages.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// writeText writes about n bytes of prose as the entity w and closes it.
func (g *Generator) writeText(w *message.Writer, r *rand.Rand, n int, nonASCII bool) error {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	*bp = g.appendText((*bp)[:0], r, n, nonASCII)
	return writeEntity(w, *bp)
}

// writeHTML writes about n bytes of HTML as the entity w and closes it.
func (g *Generator) writeHTML(w *message.Writer, r *rand.Rand, n int, nonASCII bool) error {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	*bp = g.appendHTML((*bp)[:0], r, n, nonASCII)
	return writeEntity(w, *bp)
}

// textHeader chooses the transfer encoding of a text part: 8bit only if the
// server offered 8BITMIME, quoted-printable for non-ASCII text otherwise.
func textHeader(mediaType string, nonASCII, eightBit bool, used *bool) message.Header {
	var h message.Header
	h.SetContentType(mediaType, map[string]string{"charset": "utf-8"})
	switch {
	case !nonASCII:
		h.Set("Content-Transfer-Encoding", "7bit")
	case eightBit:
		h.Set("Content-Transfer-Encoding", "8bit")
		*used = true
	default:
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	return h
}

func writeEntity(w *message.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Close()
}

func (g *Generator) writePlain(buf *bytes.Buffer, h mail.Header, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	nonASCII := r.IntN(2) == 0
	th := textHeader("text/plain", nonASCII, eightBit, used)
	for f := th.Fields(); f.Next(); {
		h.Set(f.Key(), f.Value())
	}
	w, err := message.CreateWriter(buf, h.Header)
	if err != nil {
		return err
	}
	return g.writeText(w, r, budget, nonASCII)
}

func boundary(r *rand.Rand) string {
	return fmt.Sprintf("mc-%016x%016x", r.Uint64(), r.Uint64())
}

func (g *Generator) writeAltParts(mw *message.Writer, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	nonASCII := r.IntN(2) == 0
	pw, err := mw.CreatePart(textHeader("text/plain", nonASCII, eightBit, used))
	if err != nil {
		return err
	}
	if err := g.writeText(pw, r, budget*2/5, nonASCII); err != nil {
		return err
	}
	pw, err = mw.CreatePart(textHeader("text/html", nonASCII, eightBit, used))
	if err != nil {
		return err
	}
	return g.writeHTML(pw, r, budget*3/5, nonASCII)
}

func (g *Generator) writeAlternative(buf *bytes.Buffer, h mail.Header, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary(r)})
	w, err := message.CreateWriter(buf, h.Header)
	if err != nil {
		return err
	}
	if err := g.writeAltParts(w, r, budget, eightBit, used); err != nil {
		return err
	}
	return w.Close()
}

var attachmentTypes = []struct{ mediaType, ext string }{
	{"application/pdf", "pdf"}, {"image/png", "png"}, {"application/zip", "zip"},
	{"application/octet-stream", "bin"},
}

func (g *Generator) writeAttachment(buf *bytes.Buffer, h mail.Header, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	h.SetContentType("multipart/mixed", map[string]string{"boundary": boundary(r)})
	w, err := message.CreateWriter(buf, h.Header)
	if err != nil {
		return err
	}
	textLen := min(budget/4, 2048+r.IntN(2048))
	if r.IntN(2) == 0 {
		var ah message.Header
		ah.SetContentType("multipart/alternative", map[string]string{"boundary": boundary(r)})
		aw, err := w.CreatePart(ah)
		if err != nil {
			return err
		}
		if err := g.writeAltParts(aw, r, textLen, eightBit, used); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
	} else {
		nonASCII := r.IntN(2) == 0
		pw, err := w.CreatePart(textHeader("text/plain", nonASCII, eightBit, used))
		if err != nil {
			return err
		}
		if err := g.writeText(pw, r, textLen, nonASCII); err != nil {
			return err
		}
	}
	// base64 costs 4/3 plus CRLF every 76 characters.
	raw := max((budget-textLen)*57/78, 16)
	nAtt := 1 + r.IntN(3)
	for i := range nAtt {
		part := raw / nAtt
		if i == nAtt-1 {
			part = raw - part*(nAtt-1)
		}
		at := attachmentTypes[r.IntN(len(attachmentTypes))]
		var ph message.Header
		ph.SetContentType(at.mediaType, nil)
		ph.SetContentDisposition("attachment", map[string]string{"filename": fmt.Sprintf("file-%d.%s", i+1, at.ext)})
		ph.Set("Content-Transfer-Encoding", "base64")
		pw, err := w.CreatePart(ph)
		if err != nil {
			return err
		}
		var key [32]byte
		for k := range 4 {
			binary.LittleEndian.PutUint64(key[8*k:], r.Uint64())
		}
		bp := scratch.Get().(*[]byte)
		data := slices.Grow((*bp)[:0], part)[:part]
		_, _ = rand.NewChaCha8(key).Read(data)
		err = writeEntity(pw, data)
		*bp = data
		scratch.Put(bp)
		if err != nil {
			return err
		}
	}
	return w.Close()
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
