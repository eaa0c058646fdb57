package corpus

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// How a message is built
//
// Every choice (size, shape, recipients, subject, boundaries, text, attachment
// bytes) is drawn from the message's random source in a fixed order, and the
// bytes are what go-message's writers make of those choices: the test file
// reference_test.go keeps the path through message.CreateWriter, CreatePart
// and their encoders as the oracle and checks the builder against it, byte
// for byte, over every shape and transfer mode. The builder gets there
// without pushing every message through those writers, which cost a sender
// more CPU than sending the message:
//
//   - header fields are go-message's (textproto.WriteHeader): a field that
//     fits on one line is "Key: value" CRLF, which is all go-message writes
//     for it; a longer one is formatted by go-message, and recipient lists,
//     which recur, are kept once formatted;
//   - the header blocks that never vary (MIME-Version, text part headers,
//     attachment part headers) are written by go-message once per process;
//   - 7bit and 8bit text is generated as CRLF lines far below go-message's
//     998-byte line limit, which its line wrapper passes unchanged, so it is
//     appended as it is; quoted-printable goes through mime/quotedprintable,
//     as go-message does;
//   - base64 is encoding/base64 in 76-character lines joined by CRLF, as
//     go-message's encoder and line wrapper write it;
//   - the message is built in its final buffer: the hash field has a fixed
//     length, so its room is reserved in the header and filled in once the
//     body is hashed, and the body is never copied.

// maxUnfolded is the longest header line go-message writes unfolded
// (textproto's preferred line length).
const maxUnfolded = 76

// dateLayout is the Date format of go-message's mail.Header.SetDate.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// textEnc is the transfer encoding of a text part.
type textEnc int

const (
	enc7bit textEnc = iota // ASCII text
	enc8bit                // non-ASCII text, the server offered 8BITMIME
	encQP                  // non-ASCII text without 8BITMIME: quoted-printable
)

var encNames = [...]string{enc7bit: "7bit", enc8bit: "8bit", encQP: "quoted-printable"}

// textEncoding chooses the transfer encoding of a text part: 8bit only if the
// server offered 8BITMIME, quoted-printable for non-ASCII text otherwise.
func textEncoding(nonASCII, eightBit bool) textEnc {
	switch {
	case !nonASCII:
		return enc7bit
	case eightBit:
		return enc8bit
	default:
		return encQP
	}
}

// textPartHeader is the header go-message gives a text part of mediaType.
func textPartHeader(mediaType string, enc textEnc) message.Header {
	var h message.Header
	h.SetContentType(mediaType, map[string]string{"charset": "utf-8"})
	h.Set("Content-Transfer-Encoding", encNames[enc])
	return h
}

var attachmentTypes = []struct{ mediaType, ext string }{
	{"application/pdf", "pdf"}, {"image/png", "png"}, {"application/zip", "zip"},
	{"application/octet-stream", "bin"},
}

// maxAttachments bounds the attachments of one message.
const maxAttachments = 3

// fixedHeaders are the header blocks that do not vary between messages
// (or only by a boundary), written by go-message once.
type fixedHeaders struct {
	mimeVersion []byte                   // the MIME-Version field CreateWriter adds
	plainTop    [3][]byte                // Content-Type and -Transfer-Encoding of a text/plain message, by encoding
	plainPart   [3][]byte                // header of a text/plain part with its blank line, by encoding
	htmlPart    [3][]byte                // the same for text/html
	attachment  [][maxAttachments][]byte // header of attachment i+1 of each type, with its blank line
	alternative stamp                    // the Content-Type field of a multipart/alternative entity
	mixed       stamp                    // the same for multipart/mixed
}

var fixed = sync.OnceValue(func() (f fixedHeaders) {
	must := func(b []byte, err error) []byte {
		if err != nil {
			panic(fmt.Sprintf("corpus: go-message refused a constant header: %v", err))
		}
		return b
	}
	f.mimeVersion = must(formatField("MIME-Version", "1.0"))
	for enc := range encNames {
		th := textPartHeader("text/plain", textEnc(enc))
		// A plain message gets the part's fields copied into its own header.
		var top message.Header
		for fl := th.Fields(); fl.Next(); {
			top.Set(fl.Key(), fl.Value())
		}
		f.plainTop[enc] = bytes.TrimSuffix(must(writeHeader(top)), crlf)
		f.plainPart[enc] = must(writeHeader(th))
		f.htmlPart[enc] = must(writeHeader(textPartHeader("text/html", textEnc(enc))))
	}
	for _, mp := range []struct {
		s    *stamp
		kind string
	}{{&f.alternative, "alternative"}, {&f.mixed, "mixed"}} {
		var ok bool
		*mp.s, ok = newStamp(func(p string) ([]byte, error) {
			return formatField("Content-Type", "multipart/"+mp.kind+"; boundary=mc-"+p)
		}, boundaryHex)
		if !ok {
			panic("corpus: go-message split a multipart boundary while folding its Content-Type")
		}
	}
	f.attachment = make([][maxAttachments][]byte, len(attachmentTypes))
	for t, at := range attachmentTypes {
		for i := range maxAttachments {
			var h message.Header
			h.SetContentType(at.mediaType, nil)
			h.SetContentDisposition("attachment", map[string]string{"filename": fmt.Sprintf("file-%d.%s", i+1, at.ext)})
			h.Set("Content-Transfer-Encoding", "base64")
			f.attachment[t][i] = must(writeHeader(h))
		}
	}
	return f
})

// writeHeader returns h as go-message writes it, blank line included.
func writeHeader(h message.Header) ([]byte, error) {
	var b bytes.Buffer
	err := textproto.WriteHeader(&b, h.Header)
	return b.Bytes(), err
}

// formatField returns the header field k: v as go-message writes it (folded
// if long), with its CRLF.
func formatField(k, v string) ([]byte, error) {
	var h message.Header
	h.Add(k, v)
	b, err := writeHeader(h)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-2], nil
}

// stamp is a header field as go-message formats it, made once with a
// placeholder where each message's own characters go. go-message folds a
// field by its length and where its spaces are, so a value of the
// placeholder's length without spaces folds the same way, and writing it
// over the placeholder gives the bytes go-message would have written.
type stamp struct {
	field []byte
	at, n int // the placeholder is field[at : at+n]
}

// newStamp formats a field twice, with placeholders of n '0's and of n
// '1's, and finds the run of n bytes where the two differ. ok is false if
// the placeholder did not come through formatting whole and unchanged: then
// each message's field must be formatted on its own.
func newStamp(format func(placeholder string) ([]byte, error), n int) (stamp, bool) {
	p0, p1 := strings.Repeat("0", n), strings.Repeat("1", n)
	f0, err0 := format(p0)
	f1, err1 := format(p1)
	if err0 != nil || err1 != nil || len(f0) != len(f1) {
		return stamp{}, false
	}
	at := 0
	for at < len(f0) && f0[at] == f1[at] {
		at++
	}
	if at+n > len(f0) || string(f0[at:at+n]) != p0 || string(f1[at:at+n]) != p1 || !bytes.Equal(f0[at+n:], f1[at+n:]) {
		return stamp{}, false
	}
	return stamp{field: f0, at: at, n: n}, true
}

// append appends the field with value over the placeholder; len(value)
// must be the placeholder's.
func (s *stamp) append(dst []byte, value string) []byte {
	n := len(dst)
	dst = append(dst, s.field...)
	copy(dst[n+s.at:n+s.at+s.n], value)
	return dst
}

// appendField appends the header field k: v as go-message writes it. k must
// be in canonical form. recurs says the field is worth keeping formatted if
// go-message has to fold it.
func (g *Generator) appendField(dst []byte, k, v string, recurs bool) ([]byte, error) {
	if v != "" && len(k)+2+len(v) <= maxUnfolded && !strings.ContainsAny(v, "\r\n") {
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		return append(dst, crlf...), nil
	}
	if !recurs {
		f, err := formatField(k, v)
		return append(dst, f...), err
	}
	f, err := g.folded.get(k+"\x00"+v, func() ([]byte, error) { return formatField(k, v) })
	return append(dst, f...), err
}

// cache keeps values made at first use, up to a bound: a run has few
// distinct senders and recipient lists, and the bound keeps a pathological
// one from growing it without end (values past it are made every time).
type cache[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

const maxCached = 4096

func (c *cache[V]) get(key string, make func() (V, error)) (V, error) {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := make()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]V{}
	}
	if len(c.m) < maxCached {
		c.m[key] = v
	}
	c.mu.Unlock()
	return v, nil
}

// formatMailbox formats address as go-message's address list fields do.
func formatMailbox(address string) string {
	return (&mail.Address{Address: address}).String()
}

// addressList is the value go-message's SetAddressList gives l.
func (g *Generator) addressList(l []string) string {
	if len(l) == 1 {
		return g.mailboxOf(l[0])
	}
	s := make([]string, len(l))
	for i, a := range l {
		s[i] = g.mailboxOf(a)
	}
	return strings.Join(s, ", ")
}

func (g *Generator) mailboxOf(a string) string {
	s, _ := g.mailboxes.get(a, func() (string, error) { return formatMailbox(a), nil })
	return s
}

// encodeText is s as go-message encodes unstructured header text (RFC 2047
// where it is not ASCII).
func encodeText(s string) string {
	var h message.Header
	h.SetText("Subject", s)
	return h.Get("Subject")
}

var subjects = []string{
	"Quarterly report", "Re: meeting agenda", "Invoice %d", "Fwd: project update",
	"Grüße aus Köln %d", "Café crème et déjà vu", "Привет из почты %d", "日本語のテスト %d",
	"Ελληνικά θέματα", "Status of ticket #%d", "Smörgåsbord at noon", "½ price offer €%d",
}

// appendSubject appends the Subject field of template i for sequence seq.
// A template with a sequence number is stamped: formatted once per number
// of digits, the digits written over its placeholder.
func (g *Generator) appendSubject(dst []byte, i, seq int) ([]byte, error) {
	if s := g.subject[i]; s != "" {
		return g.appendField(dst, "Subject", s, true)
	}
	var d [20]byte
	digits := strconv.AppendInt(d[:0], int64(seq), 10)
	if seq >= 0 {
		if st := g.subjectStamp(i, len(digits)); st != nil {
			return st.append(dst, string(digits)), nil
		}
	}
	return g.appendField(dst, "Subject", encodeText(strings.Replace(subjects[i], "%d", string(digits), 1)), false)
}

// subjectStamp returns the stamp of template i with n digits, making it at
// first use, or nil if that subject cannot be stamped.
func (g *Generator) subjectStamp(i, n int) *stamp {
	slot := &g.subjectStamps[i][n]
	if st := slot.Load(); st != nil {
		if st.field == nil {
			return nil
		}
		return st
	}
	st, _ := newStamp(func(p string) ([]byte, error) {
		return formatField("Subject", encodeText(strings.Replace(subjects[i], "%d", p, 1)))
	}, n)
	slot.Store(&st)
	if st.field == nil {
		return nil
	}
	return &st
}

// boundaryHex is the length of a boundary's random part.
const boundaryHex = 32

// boundary draws a multipart boundary: "mc-" and 32 hex digits.
func boundary(r *rand.Rand) string {
	var raw [boundaryHex / 2]byte
	binary.BigEndian.PutUint64(raw[:8], r.Uint64())
	binary.BigEndian.PutUint64(raw[8:], r.Uint64())
	var b [3 + boundaryHex]byte
	copy(b[:], "mc-")
	hex.Encode(b[3:], raw[:])
	return string(b[:])
}

func (g *Generator) build(stream string, seq int, from string, eightBit bool, over int) (*Message, int, error) {
	m, r, size := g.start(stream, seq, from)
	o := g.o
	subj := r.IntN(len(subjects))

	// Room left for the body, once headers and MIME framing (~600 bytes)
	// are paid for.
	budget := max(size-len(m.ID)*2-600-80*len(m.Rcpt)-over, 64)

	// The header, in the order go-message writes it (the reverse of the
	// order the fields were set in).
	f := fixed()
	b, pooled := getBuffer(size + size/16 + 4096)
	m.pooled = pooled
	b = append(b, f.mimeVersion...)
	var (
		bnd      string
		nonASCII bool
		err      error
	)
	switch m.Shape {
	case ShapePlain:
		nonASCII = r.IntN(2) == 0
		b = append(b, f.plainTop[textEncoding(nonASCII, eightBit)]...)
	case ShapeAlternative:
		bnd = boundary(r)
		b = f.alternative.append(b, bnd[3:])
	default:
		bnd = boundary(r)
		b = f.mixed.append(b, bnd[3:])
	}
	fields := [...]struct {
		k, v   string
		recurs bool
	}{
		{HeaderID, m.ID, false},
		{"Message-Id", "<" + m.ID + "@mailchaos.test>", false},
		{"Date", "", false},    // always short: appended in place
		{"Subject", "", false}, // see appendSubject
		{"Cc", "", true},
		{"To", g.addressList(m.To), true},
		{"From", g.mailboxOf(from), true},
	}
	if len(m.Cc) > 0 {
		fields[4].v = g.addressList(m.Cc)
	}
	for _, fl := range fields {
		switch {
		case err != nil:
		case fl.k == "Subject":
			b, err = g.appendSubject(b, subj, seq)
		case fl.k == "Date":
			b = append(b, "Date: "...)
			b = o.Date.Add(time.Duration(seq)*time.Second).AppendFormat(b, dateLayout)
			b = append(b, crlf...)
		case fl.v != "":
			b, err = g.appendField(b, fl.k, fl.v, fl.recurs)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("build message %s: %w", m.ID, err)
	}
	// The hash field comes last; its value is filled in by seal once the
	// body is final.
	b = append(b, HeaderBodySHA256+": "...)
	b = append(b, make([]byte, sha256.Size*2)...)
	b = append(b, "\r\n\r\n"...)
	m.BodyOffset = len(b)

	switch m.Shape {
	case ShapePlain:
		enc := textEncoding(nonASCII, eightBit)
		m.EightBit = enc == enc8bit
		b = g.appendTextBody(b, r, budget, nonASCII, enc, false)
	case ShapeAlternative:
		b = g.appendAlternative(b, r, bnd, budget, eightBit, &m.EightBit)
	default:
		if b, err = g.appendMixed(b, r, bnd, budget, eightBit, &m.EightBit); err != nil {
			return nil, 0, fmt.Errorf("build message %s: %w", m.ID, err)
		}
	}
	if !bytes.HasSuffix(b, crlf) {
		b = append(b, crlf...)
	}
	m.Bytes = b
	return m, size, nil
}

// seal fills in the hash field of a built message: it is hashed only once
// its size is final (see Generator.Message).
func (m *Message) seal() {
	sum := sha256.Sum256(m.Body())
	hashAt := m.BodyOffset - len("\r\n\r\n") - sha256.Size*2
	hex.Encode(m.Bytes[hashAt:], sum[:])
	m.BodySHA256 = string(m.Bytes[hashAt : m.BodyOffset-4])
}

// buffers holds message buffers given back by Message.Release, by size
// class: class k holds buffers of capacity minBuffer<<k exactly.
var buffers [16]sync.Pool

const minBuffer = 4 << 10

// bufferClass returns the smallest class whose buffers hold n bytes.
func bufferClass(n int) int {
	k := 0
	for minBuffer<<k < n {
		k++
	}
	return k
}

// getBuffer returns an empty buffer with room for at least n bytes, and the
// pointer Message.Release gives it back with.
func getBuffer(n int) ([]byte, *[]byte) {
	k := bufferClass(n)
	if k >= len(buffers) {
		return make([]byte, 0, n), nil
	}
	if p, ok := buffers[k].Get().(*[]byte); ok {
		return (*p)[:0], p
	}
	return make([]byte, 0, minBuffer<<k), new([]byte)
}

// Release gives the message's buffer back for a later message to be built
// in. Neither m.Bytes nor anything sliced from it may be used afterwards; the
// other fields stay valid. Calling it is optional (a message not released is
// garbage collected as usual) and a second call does nothing.
func (m *Message) Release() {
	b, p := m.Bytes, m.pooled
	m.Bytes, m.pooled = nil, nil
	// A buffer that had to grow is no longer of its class: left to the
	// garbage collector.
	if k := bufferClass(cap(b)); p != nil && k < len(buffers) && cap(b) == minBuffer<<k {
		*p = b
		buffers[k].Put(p)
	}
}

// scratch buffers for text to be quoted-printable encoded and attachment
// bytes to be base64 encoded: reused across messages.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// appender is a []byte as an io.Writer.
type appender []byte

func (a *appender) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}

// appendTextBody appends about n bytes of prose (html: as HTML) in the
// transfer encoding enc.
func (g *Generator) appendTextBody(dst []byte, r *rand.Rand, n int, nonASCII bool, enc textEnc, html bool) []byte {
	if enc != encQP {
		return g.appendProse(dst, r, n, nonASCII, html)
	}
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	*bp = g.appendProse((*bp)[:0], r, n, nonASCII, html)
	return appendQuotedPrintable(dst, *bp)
}

// appendQuotedPrintable appends text quoted-printable encoded, as
// go-message's writer encodes it.
func appendQuotedPrintable(dst, text []byte) []byte {
	w := quotedprintable.NewWriter((*appender)(&dst))
	_, _ = w.Write(text) // appending cannot fail
	_ = w.Close()
	return dst
}

// appendProse appends about n bytes of prose, as HTML if html.
func (g *Generator) appendProse(dst []byte, r *rand.Rand, n int, nonASCII, html bool) []byte {
	if html {
		return g.appendHTML(dst, r, n, nonASCII)
	}
	return g.appendText(dst, r, n, nonASCII)
}

// appendPartStart appends the delimiter before a part: the first one of a
// multipart body has no CRLF of its own.
func appendPartStart(dst []byte, bnd string, first bool) []byte {
	if !first {
		dst = append(dst, crlf...)
	}
	dst = append(dst, "--"...)
	dst = append(dst, bnd...)
	return append(dst, crlf...)
}

// appendPartsEnd appends the close delimiter of a multipart body.
func appendPartsEnd(dst []byte, bnd string) []byte {
	dst = append(dst, "\r\n--"...)
	dst = append(dst, bnd...)
	return append(dst, "--\r\n"...)
}

// appendAlternative appends the parts of a multipart/alternative body with
// boundary bnd: the text, then the same size and language as HTML.
func (g *Generator) appendAlternative(dst []byte, r *rand.Rand, bnd string, budget int, eightBit bool, used *bool) []byte {
	nonASCII := r.IntN(2) == 0
	enc := textEncoding(nonASCII, eightBit)
	*used = *used || enc == enc8bit
	f := fixed()
	dst = appendPartStart(dst, bnd, true)
	dst = append(dst, f.plainPart[enc]...)
	dst = g.appendTextBody(dst, r, budget*2/5, nonASCII, enc, false)
	dst = appendPartStart(dst, bnd, false)
	dst = append(dst, f.htmlPart[enc]...)
	dst = g.appendTextBody(dst, r, budget*3/5, nonASCII, enc, true)
	return appendPartsEnd(dst, bnd)
}

// appendMixed appends the parts of a multipart/mixed body with boundary
// bnd: a text or alternative part, then one to three base64 attachments.
func (g *Generator) appendMixed(dst []byte, r *rand.Rand, bnd string, budget int, eightBit bool, used *bool) ([]byte, error) {
	f := fixed()
	textLen := min(budget/4, 2048+r.IntN(2048))
	dst = appendPartStart(dst, bnd, true)
	if r.IntN(2) == 0 {
		inner := boundary(r)
		dst = f.alternative.append(dst, inner[3:])
		dst = append(dst, crlf...)
		dst = g.appendAlternative(dst, r, inner, textLen, eightBit, used)
	} else {
		nonASCII := r.IntN(2) == 0
		enc := textEncoding(nonASCII, eightBit)
		*used = *used || enc == enc8bit
		dst = append(dst, f.plainPart[enc]...)
		dst = g.appendTextBody(dst, r, textLen, nonASCII, enc, false)
	}
	// base64 costs 4/3 plus CRLF every 76 characters.
	raw := max((budget-textLen)*57/78, 16)
	nAtt := 1 + r.IntN(maxAttachments)
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	for i := range nAtt {
		part := raw / nAtt
		if i == nAtt-1 {
			part = raw - part*(nAtt-1)
		}
		dst = appendPartStart(dst, bnd, false)
		dst = append(dst, f.attachment[r.IntN(len(attachmentTypes))][i]...)
		var key [32]byte
		for k := range 4 {
			binary.LittleEndian.PutUint64(key[8*k:], r.Uint64())
		}
		data := slices.Grow((*bp)[:0], part)[:part]
		_, _ = rand.NewChaCha8(key).Read(data)
		*bp = data
		dst = appendBase64(dst, data)
	}
	return appendPartsEnd(dst, bnd), nil
}

// appendBase64 appends data in base64, 76 characters (57 bytes) a line,
// lines joined by CRLF with none after the last, as go-message's encoder
// writes it (the delimiter after the part supplies the line end).
func appendBase64(dst, data []byte) []byte {
	enc := base64.StdEncoding
	n := enc.EncodedLen(len(data))
	dst = slices.Grow(dst, n+2*(n/76))
	for i := 0; i < len(data); i += 57 {
		if i > 0 {
			dst = append(dst, crlf...)
		}
		chunk := data[i:min(i+57, len(data))]
		at := len(dst)
		dst = dst[:at+enc.EncodedLen(len(chunk))]
		enc.Encode(dst[at:], chunk)
	}
	return dst
}
