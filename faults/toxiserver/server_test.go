package toxiserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/emersion/go-smtp"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/faults/smtptoxic"
)

// mailbox is an in-process SMTP server's store of accepted messages.
type mailbox struct {
	mu   sync.Mutex
	msgs []string
}

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{m: m}, nil }

func (m *mailbox) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

type session struct{ m *mailbox }

func (s *session) Reset()                               {}
func (s *session) Logout() error                        { return nil }
func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.msgs = append(s.m.msgs, string(b))
	s.m.mu.Unlock()
	return nil
}

// stackUp starts, on loopback: an SMTP server, our toxiproxy (Run, as the
// programs run it) and a proxy "smtp" in front of the server. It returns the
// proxy's address and handle.
func stackUp(t *testing.T) (*mailbox, string, *toxiproxy.Proxy) {
	t.Helper()
	mb := &mailbox{}
	srv := smtp.NewServer(mb)
	srv.Domain = "server.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr, p := proxyUp(t, ln.Addr().String())
	return mb, addr, p
}

// proxyUp runs our toxiproxy in-process with one proxy "smtp" to upstream.
func proxyUp(t *testing.T, upstream string) (string, *toxiproxy.Proxy) {
	t.Helper()
	t.Setenv("LOG_LEVEL", "error")
	apiPort := freePort(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"-host=127.0.0.1", "-port=" + strconv.Itoa(apiPort)}, io.Discard) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	api := "127.0.0.1:" + strconv.Itoa(apiPort)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + api + "/version")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("toxiproxy API not up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tp := toxiproxy.NewClient(api)
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p, err := tp.CreateProxy("smtp", listen, upstream)
	if err != nil {
		t.Fatal(err)
	}
	return listen, p
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const body = "From: a@x.test\r\nSubject: cut\r\n\r\nline one\r\n.starts with a dot\r\n.\r\n..\r\nlast line\r\n"

// send sends one message through addr and reports where it failed.
func send(addr, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.CommandTimeout = 3 * time.Second
	c.SubmissionTimeout = 3 * time.Second
	if err := c.Hello("client.test"); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if err := c.Mail("a@x.test", nil); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := c.Rcpt("b@x.test", nil); err != nil {
		return fmt.Errorf("rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return fmt.Errorf("data write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data-end: %w", err)
	}
	return c.Quit()
}

// streamFor is the stream each mode works on (as the smtp-cut fault adds it).
func streamFor(mode string) string {
	if mode == "before" {
		return "upstream"
	}
	return "downstream"
}

func waitCount(mb *mailbox, want int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for mb.count() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return mb.count()
}

func TestToxicTypeMatchesFaults(t *testing.T) {
	if smtptoxic.Type != faults.SMTPCutToxic {
		t.Fatalf("smtptoxic.Type %q != faults.SMTPCutToxic %q", smtptoxic.Type, faults.SMTPCutToxic)
	}
}

// TestDataCut runs real SMTP sessions through our toxiproxy with the
// smtp_data_cut toxic: "after" makes the server accept a message the
// client never hears about; "before" makes neither side have it.
func TestDataCut(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		slice    bool // a slicer ahead of the cut delivers the stream in 1-5 byte chunks
		toxicity float32
		accepted int    // messages the server has after the first send
		clientOK bool   // the client heard 250
		stream   string // override of the mode's stream
	}{
		{name: "after", mode: "after", toxicity: 1, accepted: 1},
		{name: "before", mode: "before", toxicity: 1, accepted: 0},
		{name: "after sliced", mode: "after", slice: true, toxicity: 1, accepted: 1},
		{name: "before sliced", mode: "before", slice: true, toxicity: 1, accepted: 0},
		{name: "toxicity 0 passes", mode: "after", toxicity: 0.0001, accepted: 1, clientOK: true},
		{name: "after on the wrong stream passes", mode: "after", stream: "upstream", toxicity: 1, accepted: 1, clientOK: true},
		{name: "before on the wrong stream passes", mode: "before", stream: "downstream", toxicity: 1, accepted: 1, clientOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mb, addr, p := stackUp(t)
			if tt.slice {
				if _, err := p.AddToxic("slice", "slicer", "upstream", 1, toxiproxy.Attributes{"average_size": 3, "size_variation": 2, "delay": 0}); err != nil {
					t.Fatal(err)
				}
			}
			st := streamFor(tt.mode)
			if tt.stream != "" {
				st = tt.stream
			}
			if _, err := p.AddToxic("cut", smtptoxic.Type, st, tt.toxicity, toxiproxy.Attributes{"mode": tt.mode}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := send(addr, body)
			took := time.Since(start)
			if tt.clientOK {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
			} else {
				// The client must fail exactly at the end of DATA, quickly:
				// the cut is not a timeout.
				if err == nil || !strings.HasPrefix(err.Error(), "data-end:") {
					t.Fatalf("send error = %v, want a data-end failure", err)
				}
				if took > 2*time.Second {
					t.Errorf("cut took %v", took)
				}
			}
			wait := time.Second
			if tt.accepted == 0 {
				wait = 300 * time.Millisecond // nothing should arrive
			}
			if got := waitCount(mb, tt.accepted, wait); got != tt.accepted {
				t.Fatalf("server accepted %d messages, want %d", got, tt.accepted)
			}
			if tt.accepted == 1 {
				// Byte-identical: the server's copy (dot-unstuffed by
				// go-smtp) is the body as sent.
				if got := mb.msgs[0]; got != body {
					t.Fatalf("server got %q, want %q", got, body)
				}
			}
			t.Logf("client: %v (after %v); server has %d", err, took.Round(time.Millisecond), mb.count())

			// Heal: with the toxic removed, a retry goes through. After an
			// "after" cut this is the recovered duplicate.
			if err := p.RemoveToxic("cut"); err != nil {
				t.Fatal(err)
			}
			if err := send(addr, body); err != nil {
				t.Fatalf("send after heal: %v", err)
			}
			if got := waitCount(mb, tt.accepted+1, time.Second); got != tt.accepted+1 {
				t.Fatalf("after heal the server has %d messages, want %d", got, tt.accepted+1)
			}
		})
	}
}

// TestDataCutPartial: with toxicity 0.5 over 40 connections, some sends
// are cut and some pass, and the server's count matches what "after" mode
// promises: every message was accepted, cut or not.
func TestDataCutPartial(t *testing.T) {
	mb, addr, p := stackUp(t)
	if _, err := p.AddToxic("cut", smtptoxic.Type, "downstream", 0.5, toxiproxy.Attributes{"mode": "after"}); err != nil {
		t.Fatal(err)
	}
	var ok, cut int
	for i := 0; i < 40; i++ {
		err := send(addr, body)
		switch {
		case err == nil:
			ok++
		case strings.HasPrefix(err.Error(), "data-end:"):
			cut++
		default:
			t.Fatalf("send %d failed outside data-end: %v", i, err)
		}
	}
	if ok == 0 || cut == 0 {
		t.Fatalf("toxicity 0.5: %d ok, %d cut; want some of each", ok, cut)
	}
	if got := waitCount(mb, 40, 2*time.Second); got != 40 {
		t.Fatalf("server accepted %d of 40", got)
	}
	t.Logf("40 sends: %d ok, %d cut (indeterminate but accepted)", ok, cut)
}

// TestDataCutRawBytes checks byte by byte, with a raw upstream, that in
// "before" mode not one byte of the terminator reaches the server, and in
// "after" mode the whole terminator does while the client reads EOF and no
// reply.
func TestDataCutRawBytes(t *testing.T) {
	for _, mode := range []string{"before", "after"} {
		t.Run(mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan string, 1)
			go rawServer(ln, got)
			addr, p := proxyUp(t, ln.Addr().String())
			if _, err := p.AddToxic("cut", smtptoxic.Type, streamFor(mode), 1, toxiproxy.Attributes{"mode": mode}); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			r := make([]byte, 512)
			readLine := func() string { n, _ := c.Read(r); return string(r[:n]) }
			readLine() // banner
			io.WriteString(c, "DATA\r\n")
			if l := readLine(); !strings.HasPrefix(l, "354") {
				t.Fatalf("after DATA: %q", l)
			}
			// The terminator arrives in three writes, to split it.
			io.WriteString(c, "Subject: x\r\n\r\nbody\r")
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, "\n.")
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, "\r\n")
			n, err := c.Read(r)
			if n != 0 || err == nil {
				t.Fatalf("client read %q, %v after the final dot; want EOF and no reply", r[:n], err)
			}
			server := <-got
			const sent = "DATA\r\nSubject: x\r\n\r\nbody\r\n"
			want := sent
			if mode == "after" {
				want = sent + ".\r\n"
			}
			if server != want {
				t.Fatalf("server received %q, want %q", server, want)
			}
		})
	}
}

// rawServer answers one SMTP-ish connection (banner, 354 to DATA, 250 to
// the end of data) and sends everything it received when the client's
// side closes.
func rawServer(ln net.Listener, got chan<- string) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	io.WriteString(c, "220 hi\r\n")
	var buf bytes.Buffer
	tmp := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(tmp)
		buf.Write(tmp[:n])
		s := buf.String()
		if n > 0 && strings.HasSuffix(s, "DATA\r\n") {
			io.WriteString(c, "354 go\r\n")
		}
		if n > 0 && strings.HasSuffix(s, "\r\n.\r\n") {
			io.WriteString(c, "250 ok\r\n")
		}
		if err != nil {
			got <- s
			return
		}
	}
}

// -version answers and returns. (A test binary records no module versions,
// so the version read from the build is checked on the mailchaos binary, in
// scenarios/cmd/mailchaos.)
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"-version"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "toxiproxy-server version ") {
		t.Fatalf("-version printed %q", out.String())
	}
	if err := Run(context.Background(), []string{"extra"}, io.Discard); err == nil {
		t.Error("an unexpected argument was accepted")
	}
}
