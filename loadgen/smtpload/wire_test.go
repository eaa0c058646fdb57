package smtpload

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"
)

// TestWireMatchesDotWriter checks the one-pass dot-stuffing against the
// standard library's DATA encoder: the stuffed bytes without their last CRLF,
// then what the encoder's Close adds ("\r\n.\r\n"), are what it would send.
func TestWireMatchesDotWriter(t *testing.T) {
	for _, msg := range []string{
		"Subject: x\r\n\r\nhello\r\n",
		".leading dot\r\nbody\r\n",
		"a\r\n.\r\n..\r\n.x\r\nend\r\n",
		"a\r\n\r\n.\r\n",
		"trailing blank\r\n\r\n",
		".\r\n",
	} {
		var want bytes.Buffer
		bw := bufio.NewWriter(&want)
		dw := textproto.NewWriter(bw).DotWriter()
		dw.Write([]byte(msg))
		dw.Close()

		w := wire([]byte(msg))
		if w == nil {
			t.Fatalf("%q: wire refused a CRLF message", msg)
		}
		// What the sender sends: the stuffed body but its last CRLF, then
		// an empty dot-writer's Close.
		var got bytes.Buffer
		got.Write(w[:len(w)-2])
		bw2 := bufio.NewWriter(&got)
		textproto.NewWriter(bw2).DotWriter().Close()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%q:\n got %q\nwant %q", msg, got.Bytes(), want.Bytes())
		}
	}
	if wire([]byte("bare\nLF\r\n")) != nil || wire([]byte("no final CRLF")) != nil || wire([]byte("\nfirst\r\n")) != nil {
		t.Error("wire accepted a message the dot-encoder must handle")
	}
	if m := []byte("plain\r\nbody\r\n"); &wire(m)[0] != &m[0] {
		t.Error("a message without dot lines was copied")
	}
}
