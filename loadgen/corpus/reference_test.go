package corpus

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// This file keeps the generator as it was first written, every part going
// through go-message's writers and encoders, as the oracle the fast builder
// must match byte for byte: same seed, same random draws, same bytes.

// refMessage is Generator.Message on the reference builder.
// refMessage is Generator.Message on the reference builder.
func (g *Generator) refMessage(stream string, seq int, from string, eightBit bool) (*Message, error) {
	return g.sized(stream, seq, from, eightBit, g.refBuild)
}

func (g *Generator) refBuild(stream string, seq int, from string, eightBit bool, over int) (*Message, int, error) {
	m, r, size := g.start(stream, seq, from)
	o := g.o

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

	budget := max(size-len(m.ID)*2-600-80*len(m.Rcpt)-over, 64)
	var buf bytes.Buffer
	var err error
	switch m.Shape {
	case ShapePlain:
		err = g.refPlain(&buf, h, r, budget, eightBit, &m.EightBit)
	case ShapeAlternative:
		err = g.refAlternative(&buf, h, r, budget, eightBit, &m.EightBit)
	default:
		err = g.refAttachment(&buf, h, r, budget, eightBit, &m.EightBit)
	}
	if err != nil {
		return nil, 0, err
	}
	if !bytes.HasSuffix(buf.Bytes(), crlf) {
		buf.Write(crlf)
	}
	raw := buf.Bytes()
	hdrEnd := bytes.Index(raw, []byte("\r\n\r\n"))
	body := raw[hdrEnd+4:]
	sum := sha256.Sum256(body)
	m.BodySHA256 = hex.EncodeToString(sum[:])
	var out []byte
	out = append(out, raw[:hdrEnd+2]...)
	out = append(out, HeaderBodySHA256+": "...)
	out = append(out, m.BodySHA256...)
	out = append(out, "\r\n\r\n"...)
	m.BodyOffset = len(out)
	m.Bytes = append(out, body...)
	return m, size, nil
}

func subject(r *rand.Rand, seq int) string {
	s := subjects[r.IntN(len(subjects))]
	if strings.Contains(s, "%d") {
		s = fmt.Sprintf(s, seq)
	}
	return s
}

func addrs(l []string) []*mail.Address {
	out := make([]*mail.Address, len(l))
	for i, a := range l {
		out[i] = &mail.Address{Address: a}
	}
	return out
}

func refTextHeader(mediaType string, nonASCII, eightBit bool, used *bool) message.Header {
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

func refEntity(w *message.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Close()
}

func (g *Generator) refPlain(buf *bytes.Buffer, h mail.Header, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	nonASCII := r.IntN(2) == 0
	th := refTextHeader("text/plain", nonASCII, eightBit, used)
	for f := th.Fields(); f.Next(); {
		h.Set(f.Key(), f.Value())
	}
	w, err := message.CreateWriter(buf, h.Header)
	if err != nil {
		return err
	}
	return refEntity(w, g.appendText(nil, r, budget, nonASCII))
}

func (g *Generator) refAltParts(mw *message.Writer, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	nonASCII := r.IntN(2) == 0
	pw, err := mw.CreatePart(refTextHeader("text/plain", nonASCII, eightBit, used))
	if err != nil {
		return err
	}
	if err := refEntity(pw, g.appendText(nil, r, budget*2/5, nonASCII)); err != nil {
		return err
	}
	pw, err = mw.CreatePart(refTextHeader("text/html", nonASCII, eightBit, used))
	if err != nil {
		return err
	}
	return refEntity(pw, g.appendHTML(nil, r, budget*3/5, nonASCII))
}

func (g *Generator) refAlternative(buf *bytes.Buffer, h mail.Header, r *rand.Rand, budget int, eightBit bool, used *bool) error {
	h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary(r)})
	w, err := message.CreateWriter(buf, h.Header)
	if err != nil {
		return err
	}
	if err := g.refAltParts(w, r, budget, eightBit, used); err != nil {
		return err
	}
	return w.Close()
}

func (g *Generator) refAttachment(buf *bytes.Buffer, h mail.Header, r *rand.Rand, budget int, eightBit bool, used *bool) error {
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
		if err := g.refAltParts(aw, r, textLen, eightBit, used); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
	} else {
		nonASCII := r.IntN(2) == 0
		pw, err := w.CreatePart(refTextHeader("text/plain", nonASCII, eightBit, used))
		if err != nil {
			return err
		}
		if err := refEntity(pw, g.appendText(nil, r, textLen, nonASCII)); err != nil {
			return err
		}
	}
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
		data := make([]byte, part)
		_, _ = rand.NewChaCha8(key).Read(data)
		if err := refEntity(pw, data); err != nil {
			return err
		}
	}
	return w.Close()
}

// TestSameBytesAsGoMessageWriters checks the fast builder against the
// reference one over every shape, both transfer modes, folded and unfolded
// headers, tiny and large sizes.
func TestSameBytesAsGoMessageWriters(t *testing.T) {
	long := "a-run-id-long-enough-that-message-id-and-x-mailchaos-id-fields-fold"
	cases := []Options{
		{Seed: 1},
		{Seed: 2, MaxRecipients: 6, Recipients: users(40)},
		{Seed: 3, Sigma: -1, MedianSize: 10440, MinSize: 1024, MaxSize: 10440, MaxRecipients: 1},
		{Seed: 4, RunID: long, MedianSize: 2048, MinSize: 512},
		{Seed: 5, MedianSize: 300 << 10, MaxSize: 1 << 20},
		{Seed: 6, Recipients: []string{"first.last+tag@example.test", "\"quoted local\"@example.test", "x@example.test"}},
	}
	for ci, o := range cases {
		g := newGen(t, o)
		n := 300
		if o.MedianSize > 64<<10 {
			n = 20
		}
		for seq := range n {
			for _, eight := range []bool{false, true} {
				from := "user0001@example.test"
				if seq%7 == 0 {
					from = "someone.with.a.rather.long.address.for.folding@sub.example.test"
				}
				want, err := g.refMessage("smtp-1", seq, from, eight)
				if err != nil {
					t.Fatalf("case %d seq %d: reference: %v", ci, seq, err)
				}
				got, err := g.Message("smtp-1", seq, from, eight)
				if err != nil {
					t.Fatalf("case %d seq %d: %v", ci, seq, err)
				}
				if !bytes.Equal(got.Bytes, want.Bytes) {
					i := 0
					for i < min(len(got.Bytes), len(want.Bytes)) && got.Bytes[i] == want.Bytes[i] {
						i++
					}
					t.Fatalf("case %d seq %d eight %v (%s): bytes differ from go-message's writers at %d:\n got %q\nwant %q",
						ci, seq, eight, want.Shape, i, got.Bytes[max(0, i-80):min(len(got.Bytes), i+80)], want.Bytes[max(0, i-80):min(len(want.Bytes), i+80)])
				}
				if got.BodyOffset != want.BodyOffset || got.BodySHA256 != want.BodySHA256 || got.EightBit != want.EightBit ||
					got.Shape != want.Shape || fmt.Sprint(got.To, got.Cc, got.Rcpt) != fmt.Sprint(want.To, want.Cc, want.Rcpt) {
					t.Fatalf("case %d seq %d: message facts differ: %+v vs %+v", ci, seq, got, want)
				}
				// The next message is built in this one's buffer.
				got.Release()
			}
		}
	}
}
