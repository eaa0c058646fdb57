package smtpload

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/internal/testsrv"
)

// pipeServer is a raw SMTP server offering PIPELINING that records, for each
// transaction, whether MAIL, RCPT and DATA arrived in one read, and refuses
// every RCPT while refuse is set.
type pipeServer struct {
	mu       sync.Mutex
	together []bool
	refuse   bool
	rsets    int
	conns    int
}

func (ps *pipeServer) handle(c net.Conn) {
	defer c.Close()
	ps.mu.Lock()
	ps.conns++
	ps.mu.Unlock()
	r := bufio.NewReader(c)
	w := func(s string) { c.Write([]byte(s)) }
	w("220 pipe ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"):
			w("250-pipe\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case strings.HasPrefix(cmd, "MAIL"):
			// What else came in the same segment is already buffered.
			rest, _ := r.Peek(r.Buffered())
			ps.mu.Lock()
			ps.together = append(ps.together, strings.Contains(string(rest), "RCPT TO:") && strings.HasSuffix(string(rest), "DATA\r\n"))
			refuse := ps.refuse
			ps.mu.Unlock()
			w("250 2.1.0 ok\r\n")
			if refuse {
				// Answer the pipelined RCPT and DATA, as a server must.
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(l, "DATA") {
						w("554 5.5.1 no valid recipients\r\n")
						break
					}
					w("550 5.1.1 no such user\r\n")
				}
			}
		case strings.HasPrefix(cmd, "RCPT"):
			w("250 2.1.5 ok\r\n")
		case cmd == "DATA":
			w("354 go ahead\r\n")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			w("250 2.0.0 queued\r\n")
		case cmd == "RSET":
			ps.mu.Lock()
			ps.rsets++
			ps.mu.Unlock()
			w("250 ok\r\n")
		case cmd == "QUIT":
			w("221 bye\r\n")
			return
		default:
			w("500 what\r\n")
		}
	}
}

// TestPipelining checks that MAIL, RCPT and DATA leave in one write when the
// server offers PIPELINING, and that a refused RCPT, whose DATA was already
// sent, drops the session instead of RSET (the pending replies would
// desynchronise it) and is still a permanent failure of that message only.
func TestPipelining(t *testing.T) {
	ps := &pipeServer{}
	addr := testsrv.StartRaw(t, ps.handle)
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: addr}, rec, Timeouts{})
	defer s.Close()
	for seq := 1; seq <= 2; seq++ {
		if res := s.Send(context.Background(), "smtp-1", seq); res.Outcome != history.OK {
			t.Fatalf("send %d: %+v", seq, res)
		}
	}
	ps.mu.Lock()
	ps.refuse = true
	ps.mu.Unlock()
	res := s.Send(context.Background(), "smtp-1", 3)
	if res.Outcome != history.Fail || res.Attempts != 1 || res.Class != "smtp:550 5.1.1" || res.Stage != StageRcpt {
		t.Fatalf("refused rcpt: %+v", res)
	}
	ps.mu.Lock()
	ps.refuse = false
	ps.mu.Unlock()
	if res := s.Send(context.Background(), "smtp-1", 4); res.Outcome != history.OK {
		t.Fatalf("send after refusal: %+v", res)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, ok := range ps.together {
		if !ok {
			t.Errorf("transaction %d: MAIL, RCPT and DATA not sent together", i+1)
		}
	}
	if ps.rsets != 0 || ps.conns != 2 {
		t.Errorf("%d RSETs, %d connections; want 0 and 2 (dropped after the refusal)", ps.rsets, ps.conns)
	}
}
