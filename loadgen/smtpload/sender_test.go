package smtpload

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/internal/testsrv"
	"github.com/mailchaos/mailchaos/loadgen/retry"
)

// memRecorder keeps records in memory and validates each one.
type memRecorder struct {
	clock history.Clock
	mu    sync.Mutex
	recs  []history.Record
	t     testing.TB
}

func newRec(t testing.TB) *memRecorder { return &memRecorder{clock: history.NewClock(), t: t} }

func (m *memRecorder) Clock() history.Clock { return m.clock }

func (m *memRecorder) Op(r history.Record) error {
	r.Type = history.TypeOp
	if err := r.Validate(); err != nil {
		m.t.Errorf("invalid record %+v: %v", r, err)
	}
	m.mu.Lock()
	m.recs = append(m.recs, r)
	m.mu.Unlock()
	return nil
}

func (m *memRecorder) scope(s history.Scope) []history.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []history.Record
	for _, r := range m.recs {
		if r.Scope == s {
			out = append(out, r)
		}
	}
	return out
}

var testUsers = map[string]string{"user0001@example.test": "pass-0001", "user0002@example.test": "pass-0002"}

func gen(t testing.TB) *corpus.Generator {
	g, err := corpus.New(corpus.Options{Seed: 1, RunID: "run", Recipients: []string{"user0001@example.test", "user0002@example.test"}, MedianSize: 4 << 10, MaxSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var fastPolicy = retry.Policy{MaxAttempts: 4, Budget: 5 * time.Second, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

func newSender(t testing.TB, ep Endpoint, rec Recorder, to Timeouts) *Sender {
	return NewSender(SenderConfig{
		Name: "smtp-1", Endpoint: ep, User: User{"user0001@example.test", "pass-0001"},
		Corpus: gen(t), Policy: fastPolicy, Timeouts: to, Recorder: rec, MsgsPerSession: 3, Seed: 1,
	})
}

func TestSendPlainAndSubmission(t *testing.T) {
	ca := testsrv.NewCA(t)
	plain := testsrv.StartSMTP(t, testsrv.SMTPOptions{})
	sub := testsrv.StartSMTP(t, testsrv.SMTPOptions{TLS: ca.Server, Users: testUsers})
	for _, tc := range []struct {
		name string
		srv  *testsrv.SMTP
		ep   Endpoint
	}{
		{"port25", plain, Endpoint{Addr: plain.Addr}},
		{"submission", sub, Endpoint{Addr: sub.Addr, Submission: true, TLS: ca.ClientTLS()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRec(t)
			s := newSender(t, tc.ep, rec, Timeouts{})
			for seq := 1; seq <= 7; seq++ {
				res := s.Send(context.Background(), "smtp-1", seq)
				if res.Outcome != history.OK {
					t.Fatalf("send %d: %+v", seq, res)
				}
			}
			s.Close()
			got := tc.srv.Delivered()
			for seq := 1; seq <= 7; seq++ {
				id := corpus.MessageID("run", "smtp-1", seq)
				if got[id] != 1 {
					t.Errorf("%s delivered %d times", id, got[id])
				}
				// The server holds exactly the bytes whose hash we recorded.
				body, _ := corpus.SplitBody(tc.srv.Raw(id))
				op := rec.scope(history.ScopeOp)[seq-1]
				if corpus.BodySHA256(body) != op.BodySHA256 {
					t.Errorf("%s: stored body hash differs from the recorded one", id)
				}
			}
			if n := s.cfg.Stats.Sessions.Load(); n != 3 { // 7 messages, 3 per session
				t.Errorf("%d sessions, want 3", n)
			}
			if ops := rec.scope(history.ScopeOp); len(ops) != 7 || ops[0].Class != "smtp:250" || ops[0].Attempt != 1 {
				t.Errorf("ops %+v", ops)
			}
		})
	}
}

func TestGreeting421IsRetriedThenFails(t *testing.T) {
	addr := testsrv.StartRaw(t, func(c net.Conn) {
		fmt.Fprintf(c, "421 4.3.2 Service not available, closing\r\n")
		c.Close()
	})
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: addr}, rec, Timeouts{})
	res := s.Send(context.Background(), "smtp-1", 1)
	if res.Outcome != history.Fail || res.Stage != StageGreeting || res.Class != "smtp:421 4.3.2" || res.Attempts != fastPolicy.MaxAttempts {
		t.Fatalf("result %+v", res)
	}
	if n := len(rec.scope(history.ScopeAttempt)); n != fastPolicy.MaxAttempts {
		t.Errorf("%d attempts recorded", n)
	}
}

func TestData451RetriedOnSameSession(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{Data: func(n int) error {
		if n <= 2 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}})
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: srv.Addr}, rec, Timeouts{})
	res := s.Send(context.Background(), "smtp-1", 1)
	s.Close()
	if res.Outcome != history.OK || res.Attempts != 3 {
		t.Fatalf("result %+v", res)
	}
	att := rec.scope(history.ScopeAttempt)
	if att[0].Class != "smtp:451 4.3.0" || att[0].Stage != StageDataEnd || att[0].Outcome != history.Fail {
		t.Errorf("first attempt %+v", att[0])
	}
	if srv.Conns() != 1 {
		t.Errorf("%d sessions: a 451 should not cost the session", srv.Conns())
	}
}

func TestPermanent5xxNotRetried(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{Data: func(int) error {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected"}
	}})
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: srv.Addr}, rec, Timeouts{})
	res := s.Send(context.Background(), "smtp-1", 1)
	if res.Outcome != history.Fail || res.Attempts != 1 || res.Class != "smtp:554 5.6.0" {
		t.Fatalf("result %+v", res)
	}
}

func TestCutAfterDotIsIndeterminateAndRetriedWithSameID(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{CutAfterDot: func(n int) bool { return n == 1 }})
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: srv.Addr}, rec, Timeouts{})
	res := s.Send(context.Background(), "smtp-1", 1)
	s.Close()
	if res.Outcome != history.OK || res.Attempts != 2 {
		t.Fatalf("result %+v", res)
	}
	att := rec.scope(history.ScopeAttempt)
	if att[0].Outcome != history.Indeterminate || att[0].Stage != StageDataEnd || att[0].Class != "eof" {
		t.Errorf("first attempt %+v", att[0])
	}
	if att[0].MsgID != att[1].MsgID || att[0].BodySHA256 != att[1].BodySHA256 {
		t.Errorf("retry changed the message: %s/%s", att[0].MsgID, att[1].MsgID)
	}
	// The server really has it twice: a recovered duplicate.
	if n := srv.Delivered()[res.MsgID]; n != 2 {
		t.Errorf("delivered %d times, want 2", n)
	}
}

func TestHangAfterDotTimesOutIndeterminate(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{HangAfterDot: func(n int) bool { return true }})
	rec := newRec(t)
	s := NewSender(SenderConfig{
		Name: "smtp-1", Endpoint: Endpoint{Addr: srv.Addr}, User: User{Address: "user0001@example.test"},
		Corpus: gen(t), Recorder: rec, Seed: 1,
		Policy:   retry.Policy{MaxAttempts: 2, Budget: 5 * time.Second, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		Timeouts: Timeouts{Command: 500 * time.Millisecond, Data: 300 * time.Millisecond},
	})
	start := time.Now()
	res := s.Send(context.Background(), "smtp-1", 1)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v: deadlines did not bound the wait", el)
	}
	if res.Outcome != history.Indeterminate || res.Class != "timeout" || res.Stage != StageDataEnd || res.Attempts != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestSilentServerDeadlineFires(t *testing.T) {
	addr := testsrv.StartRaw(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n') // never answers
	})
	rec := newRec(t)
	s := NewSender(SenderConfig{
		Name: "smtp-1", Endpoint: Endpoint{Addr: addr}, User: User{Address: "user0001@example.test"},
		Corpus: gen(t), Recorder: rec, Seed: 1,
		Policy:   retry.Policy{MaxAttempts: 1, Budget: time.Second, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		Timeouts: Timeouts{Command: 200 * time.Millisecond},
	})
	start := time.Now()
	res := s.Send(context.Background(), "smtp-1", 1)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	if res.Outcome != history.Fail || res.Class != "timeout" || res.Stage != StageGreeting {
		t.Fatalf("result %+v", res)
	}
}

func TestRefusedAndCanceled(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: addr}, rec, Timeouts{})
	res := s.Send(context.Background(), "smtp-1", 1)
	if res.Class != "conn-refused" || res.Stage != StageConnect || res.Attempts != fastPolicy.MaxAttempts {
		t.Fatalf("result %+v", res)
	}

	// A silent server and a context that ends: the watchdog closes the conn.
	silent := testsrv.StartRaw(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s = newSender(t, Endpoint{Addr: silent}, rec, Timeouts{})
	start := time.Now()
	res = s.Send(ctx, "smtp-1", 2)
	if time.Since(start) > 2*time.Second || res.Class != "canceled" {
		t.Fatalf("result %+v after %v", res, time.Since(start))
	}
}

func TestBadCertificateIsTLS(t *testing.T) {
	ca, other := testsrv.NewCA(t), testsrv.NewCA(t)
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{TLS: ca.Server, Users: testUsers})
	rec := newRec(t)
	s := newSender(t, Endpoint{Addr: srv.Addr, Submission: true, TLS: other.ClientTLS()}, rec, Timeouts{})
	res := s.Send(context.Background(), "smtp-1", 1)
	if res.Class != "tls" || res.Stage != StageTLS {
		t.Fatalf("result %+v", res)
	}
	// A wrong password is a permanent 535 at the auth stage.
	s = NewSender(SenderConfig{Name: "smtp-2", Endpoint: Endpoint{Addr: srv.Addr, Submission: true, TLS: ca.ClientTLS()},
		User: User{"user0001@example.test", "wrong"}, Corpus: gen(t), Policy: fastPolicy, Recorder: rec})
	res = s.Send(context.Background(), "smtp-2", 1)
	if res.Class != "smtp:535 5.7.8" || res.Stage != StageAuth || res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestScheduleCount(t *testing.T) {
	c := Constant(100, 10*time.Second)
	if n := c.Count(5 * time.Second); n != 500 {
		t.Errorf("constant: %v", n)
	}
	r := Schedule{StartRate: 0, Stages: []Stage{{10 * time.Second, 100}, {10 * time.Second, 100}}}
	if n := r.Count(10 * time.Second); n != 500 {
		t.Errorf("ramp: %v", n)
	}
	if n := r.Count(20 * time.Second); n != 1500 {
		t.Errorf("ramp+hold: %v", n)
	}
	if d := r.TimeOf(500); (d - 10*time.Second).Abs() > time.Millisecond {
		t.Errorf("TimeOf(500) = %v", d)
	}
	if err := (Schedule{Stages: []Stage{{0, -1}}}).Validate(); err == nil || !strings.Contains(err.Error(), "duration") || !strings.Contains(err.Error(), "negative") {
		t.Errorf("validate: %v", err)
	}
	// NaN passes every comparison, +Inf makes every arrival due at once.
	for _, r := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := Constant(r, time.Second).Validate(); err == nil || !strings.Contains(err.Error(), "not a finite number") {
			t.Errorf("rate %v: %v", r, err)
		}
	}
}

func TestOpenModelRateAndDrops(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{})
	rec := newRec(t)
	stats := &Stats{}
	var senders []*Sender
	for i := range 8 {
		senders = append(senders, NewSender(SenderConfig{Name: fmt.Sprintf("smtp-%d", i+1), Endpoint: Endpoint{Addr: srv.Addr},
			User: User{Address: "user0001@example.test"}, Corpus: gen(t), Recorder: rec, Stats: stats, MsgsPerSession: 50}))
	}
	res, err := RunOpen(context.Background(), OpenConfig{Schedule: Constant(200, time.Second)}, senders)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ticks < 198 || res.Ticks > 200 || res.Dispatched+res.Dropped != res.Ticks {
		t.Errorf("result %+v", res)
	}
	snap := stats.Snapshot()
	if snap.Accepted != res.Dispatched || snap.Dropped != res.Dropped {
		t.Errorf("stats %+v vs %+v", snap, res)
	}

	// One slow sender at a high rate: most ticks must be dropped, not queued.
	slow := testsrv.StartSMTP(t, testsrv.SMTPOptions{Data: func(int) error { time.Sleep(100 * time.Millisecond); return nil }})
	s := NewSender(SenderConfig{Name: "smtp-x", Endpoint: Endpoint{Addr: slow.Addr}, User: User{Address: "user0001@example.test"},
		Corpus: gen(t), Recorder: rec, MsgsPerSession: 100})
	start := time.Now()
	res, _ = RunOpen(context.Background(), OpenConfig{Schedule: Constant(100, 500*time.Millisecond)}, []*Sender{s})
	if time.Since(start) > 1500*time.Millisecond {
		t.Errorf("open model waited for the slow server: %v", time.Since(start))
	}
	if res.Dropped < 30 || res.Dispatched > 10 {
		t.Errorf("slow server: %+v", res)
	}
}

func TestClosedModelBoundedByCount(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{})
	rec := newRec(t)
	var senders []*Sender
	for i := range 4 {
		senders = append(senders, NewSender(SenderConfig{Name: fmt.Sprintf("smtp-%d", i+1), Endpoint: Endpoint{Addr: srv.Addr},
			User: User{Address: "user0001@example.test"}, Corpus: gen(t), Recorder: rec}))
	}
	res, err := RunClosed(context.Background(), ClosedConfig{Duration: 10 * time.Second, MaxMessages: 37}, senders)
	if err != nil || res.Dispatched != 37 {
		t.Fatalf("res %+v err %v", res, err)
	}
	ids := map[string]bool{}
	for _, r := range rec.scope(history.ScopeOp) {
		ids[r.MsgID] = true
	}
	if len(ids) != 37 || len(srv.Delivered()) != 37 {
		t.Errorf("%d ids, %d delivered", len(ids), len(srv.Delivered()))
	}
	keys := slices.Collect(func(yield func(string) bool) {
		for k := range ids {
			if !yield(k) {
				return
			}
		}
	})
	if !strings.HasPrefix(keys[0], "run.smtp-") {
		t.Errorf("id %s", keys[0])
	}
}

// TestIdleSessionsAreClosed: a sender whose next message is further away
// than SessionIdle closes its session first (so a drain at a load balancer
// can finish); one that sends back to back keeps it.
func TestIdleSessionsAreClosed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rate     float64
		msgs     int
		idle     time.Duration
		sessions int
	}{
		{"sparse arrivals: a session a message", 10, 4, 50 * time.Millisecond, 4},
		{"dense arrivals: one session", 200, 20, time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{})
			s := NewSender(SenderConfig{Name: "smtp-1", Endpoint: Endpoint{Addr: srv.Addr}, User: User{Address: "user0001@example.test"},
				Corpus: gen(t), Recorder: newRec(t), MsgsPerSession: 100, SessionIdle: tc.idle})
			// No warm-up session: count only the sessions the messages use.
			res, err := RunOpen(context.Background(), OpenConfig{Schedule: Constant(tc.rate, time.Minute), MaxMessages: tc.msgs, WarmTimeout: -1}, []*Sender{s})
			if err != nil {
				t.Fatal(err)
			}
			if res.Dispatched != int64(tc.msgs) {
				t.Fatalf("dispatched %d of %d", res.Dispatched, tc.msgs)
			}
			if n := srv.Conns(); n != tc.sessions {
				t.Errorf("%d sessions for %d messages, want %d", n, tc.msgs, tc.sessions)
			}
		})
	}
}
