package corpus

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net/textproto"
	"sort"
	"strings"
	"testing"

	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%04d@example.test", i+1)
	}
	return out
}

func newGen(t testing.TB, o Options) *Generator {
	t.Helper()
	if o.RunID == "" {
		o.RunID = "run-1"
	}
	if o.Recipients == nil {
		o.Recipients = users(20)
	}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDeterministic(t *testing.T) {
	for _, eight := range []bool{false, true} {
		a, b := newGen(t, Options{Seed: 42}), newGen(t, Options{Seed: 42})
		c := newGen(t, Options{Seed: 43})
		differ := 0
		for seq := range 50 {
			ma, err := a.Message("smtp-1", seq, "user0001@example.test", eight)
			if err != nil {
				t.Fatal(err)
			}
			mb, _ := b.Message("smtp-1", seq, "user0001@example.test", eight)
			if !bytes.Equal(ma.Bytes, mb.Bytes) {
				t.Fatalf("seq %d: same seed, different bytes", seq)
			}
			mc, _ := c.Message("smtp-1", seq, "user0001@example.test", eight)
			if !bytes.Equal(ma.Bytes, mc.Bytes) {
				differ++
			}
		}
		if differ < 45 {
			t.Errorf("another seed changed only %d of 50 messages", differ)
		}
	}
}

func TestSizeDistribution(t *testing.T) {
	o := Options{Seed: 7, RunID: "r", Recipients: users(3)}.Defaults()
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = SampleSize(o, r)
	}
	sort.Ints(sizes)
	med := sizes[n/2]
	if math.Abs(float64(med)/float64(o.MedianSize)-1) > 0.05 {
		t.Errorf("median %d, want about %d", med, o.MedianSize)
	}
	p99 := sizes[n*99/100]
	if p99 < 200<<10 {
		t.Errorf("p99 %d: tail too thin", p99)
	}
	if sizes[n-1] > o.MaxSize || sizes[0] < o.MinSize {
		t.Errorf("sizes outside [%d, %d]: %d..%d", o.MinSize, o.MaxSize, sizes[0], sizes[n-1])
	}

	// The built messages follow the sampled size closely.
	g := newGen(t, Options{Seed: 7})
	var actual []int
	for seq := range 400 {
		m, err := g.Message("s", seq, "a@example.test", false)
		if err != nil {
			t.Fatal(err)
		}
		actual = append(actual, m.Size())
	}
	sort.Ints(actual)
	if got := actual[len(actual)/2]; got < 15<<10 || got > 27<<10 {
		t.Errorf("median built size %d, want about 20 KiB", got)
	}

	// Fixed size (Sigma < 0) for the benchmark.
	g = newGen(t, Options{Seed: 1, Sigma: -1, MedianSize: 10 << 10, MinSize: 1 << 10})
	for seq := range 50 {
		m, _ := g.Message("s", seq, "a@example.test", false)
		if d := math.Abs(float64(m.Size())/float64(10<<10) - 1); d > 0.15 {
			t.Errorf("fixed size: got %d bytes, want about %d", m.Size(), 10<<10)
		}
	}
}

// TestMIME parses every message back with go-message and checks the
// structure, the headers and the hash against the decoded body.
func TestMIME(t *testing.T) {
	g := newGen(t, Options{Seed: 3})
	shapes := map[Shape]int{}
	nonASCIISubject, eight := 0, 0
	for seq := range 300 {
		m, err := g.Message("smtp-2", seq, "user0002@example.test", seq%2 == 0)
		if err != nil {
			t.Fatal(err)
		}
		shapes[m.Shape]++
		if m.EightBit {
			eight++
			if seq%2 != 0 {
				t.Fatalf("%s: 8bit body without 8BITMIME", m.ID)
			}
		}
		if bytes.Contains(bytes.ReplaceAll(m.Bytes, []byte("\r\n"), nil), []byte("\n")) ||
			bytes.Contains(bytes.ReplaceAll(m.Bytes, []byte("\r\n"), nil), []byte("\r")) {
			t.Fatalf("%s: bare CR or LF", m.ID)
		}
		if !bytes.HasSuffix(m.Bytes, []byte("\r\n")) {
			t.Fatalf("%s: does not end with CRLF", m.ID)
		}
		for _, l := range bytes.Split(m.Bytes, []byte("\r\n")) {
			if len(l) > 998 {
				t.Fatalf("%s: line of %d bytes", m.ID, len(l))
			}
		}
		if seq%2 == 1 {
			for _, c := range m.Bytes {
				if c >= 0x80 {
					t.Fatalf("%s: 8-bit byte without 8BITMIME", m.ID)
				}
			}
		}
		if got := BodySHA256(m.Body()); got != m.BodySHA256 {
			t.Fatalf("%s: hash field %s, body hashes to %s", m.ID, m.BodySHA256, got)
		}
		body, _ := SplitBody(m.Bytes)
		if !bytes.Equal(body, m.Body()) {
			t.Fatalf("%s: SplitBody disagrees with BodyOffset", m.ID)
		}

		mr, err := mail.CreateReader(bytes.NewReader(m.Bytes))
		if err != nil {
			t.Fatalf("%s: parse: %v", m.ID, err)
		}
		if got := mr.Header.Get(HeaderID); got != m.ID {
			t.Errorf("%s: id header %q", m.ID, got)
		}
		if got := mr.Header.Get(HeaderBodySHA256); got != m.BodySHA256 {
			t.Errorf("%s: hash header %q", m.ID, got)
		}
		subj, err := mr.Header.Subject()
		if err != nil || subj == "" {
			t.Errorf("%s: subject %q: %v", m.ID, subj, err)
		}
		if strings.ContainsFunc(subj, func(r rune) bool { return r > 127 }) {
			nonASCIISubject++
			if raw := mr.Header.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?") {
				t.Errorf("%s: non-ASCII subject not RFC 2047 encoded: %q", m.ID, raw)
			}
		}
		to, _ := mr.Header.AddressList("To")
		cc, _ := mr.Header.AddressList("Cc")
		if len(to)+len(cc) != len(m.Rcpt) || len(m.Rcpt) == 0 {
			t.Errorf("%s: header recipients %d+%d, envelope %d", m.ID, len(to), len(cc), len(m.Rcpt))
		}
		parts := 0
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: part: %v", m.ID, err)
			}
			if _, err := io.Copy(io.Discard, p.Body); err != nil {
				t.Fatalf("%s: decode part: %v", m.ID, err)
			}
			parts++
		}
		want := map[Shape]int{ShapePlain: 1, ShapeAlternative: 2}[m.Shape]
		if m.Shape == ShapeAttachment && parts < 2 || want != 0 && parts != want {
			t.Errorf("%s: shape %s with %d parts", m.ID, m.Shape, parts)
		}
		mt, _, _ := mime.ParseMediaType(mr.Header.Get("Content-Type"))
		if m.Shape != ShapePlain && !strings.HasPrefix(mt, "multipart/") {
			t.Errorf("%s: shape %s has content type %s", m.ID, m.Shape, mt)
		}
	}
	for _, s := range []Shape{ShapePlain, ShapeAlternative, ShapeAttachment} {
		if shapes[s] == 0 {
			t.Errorf("no %s message in 300", s)
		}
	}
	if nonASCIISubject == 0 || eight == 0 {
		t.Errorf("non-ASCII subjects %d, 8bit bodies %d: want some of each", nonASCIISubject, eight)
	}
}

// TestDotRoundTrip sends every message through the DATA dot-encoder and back
// through the decoder a server uses: the body hash must survive unchanged.
func TestDotRoundTrip(t *testing.T) {
	g := newGen(t, Options{Seed: 9})
	for seq := range 100 {
		m, _ := g.Message("s", seq, "a@example.test", true)
		var wire bytes.Buffer
		dw := textproto.NewWriter(bufio.NewWriter(&wire)).DotWriter()
		dw.Write(m.Bytes)
		dw.Close()
		got, err := io.ReadAll(textproto.NewReader(bufio.NewReader(&wire)).DotReader())
		if err != nil {
			t.Fatal(err)
		}
		// DotReader turns CRLF into LF; servers keep CRLF. Compare modulo that.
		if !bytes.Equal(got, bytes.ReplaceAll(m.Bytes, []byte("\r\n"), []byte("\n"))) {
			t.Fatalf("%s: bytes changed through dot encoding", m.ID)
		}
	}
}

func TestValidateAllProblems(t *testing.T) {
	err := Options{MinSize: 100, MaxSize: 50, MaxRecipients: -1}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"run id", "recipients", "min size", "max size", "max recipients"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func ExampleGenerator_Message() {
	g, _ := New(Options{Seed: 1, RunID: "run-1", Recipients: []string{"user0001@example.test"}, Sigma: -1, MedianSize: 2048})
	m, _ := g.Message("smtp-1", 7, "user0002@example.test", false)
	fmt.Println(m.ID, m.Rcpt, m.Shape, len(m.BodySHA256))
	// Output: run-1.smtp-1.7 [user0001@example.test] alternative 64
}
