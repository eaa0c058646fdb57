package imapload

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/internal/testsrv"
	"github.com/mailchaos/mailchaos/loadgen/retry"
)

// histBuf is a history written to memory and read back through the reader,
// so every record is validated against the format.
type histBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   *history.Writer
}

func (h *histBuf) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.Write(p)
}

func newHist(t *testing.T) *histBuf {
	h := &histBuf{}
	w, err := history.NewWriter(h, history.NewClock(), history.Header{RunID: "run", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

func (h *histBuf) records(t *testing.T) []history.Record {
	t.Helper()
	if err := h.w.Flush(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	data := bytes.Clone(h.buf.Bytes())
	h.mu.Unlock()
	rd, err := history.NewReader("test", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []history.Record
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

func filter(recs []history.Record, f func(history.Record) bool) []history.Record {
	var out []history.Record
	for _, r := range recs {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}

type fixture struct {
	accts []Account
	store *testsrv.Mailstore
	addr  string
	gen   *corpus.Generator
	opts  Options
	hist  *histBuf
}

var fast = retry.Policy{MaxAttempts: 3, Budget: 3 * time.Second, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

func newFixture(t *testing.T, n int, tls bool) *fixture {
	users := map[string]string{}
	var accts []Account
	var addrs []string
	for i := 1; i <= n; i++ {
		a := Account{fmt.Sprintf("user%04d@example.test", i), fmt.Sprintf("pass-%04d", i)}
		users[a.Address] = a.Password
		accts = append(accts, a)
		addrs = append(addrs, a.Address)
	}
	f := &fixture{accts: accts, store: testsrv.NewMailstore(users), hist: newHist(t)}
	o := Options{Policy: fast, Timeouts: Timeouts{Command: 2 * time.Second, Idle: 2 * time.Second}, Seed: 1}
	if tls {
		ca := testsrv.NewCA(t)
		f.addr = f.store.StartIMAP(t, ca.Server)
		o.TLS = ca.ClientTLS()
	} else {
		f.addr = f.store.StartIMAP(t, nil)
	}
	o.Addr, o.Recorder = f.addr, f.hist.w
	f.opts = o
	g, err := corpus.New(corpus.Options{Seed: 5, RunID: "run", Recipients: addrs, MedianSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f.gen = g
	return f
}

// deliver stores message seq in every recipient's INBOX and returns it.
func (f *fixture) deliver(t *testing.T, seq int) *corpus.Message {
	m, err := f.gen.Message("smtp-1", seq, "sender@example.test", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Rcpt {
		if err := f.store.Deliver(r, m.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestFinalRead(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			f := newFixture(t, 5, tls)
			sent := map[string]*corpus.Message{}
			copies := 0
			for seq := 1; seq <= 12; seq++ {
				m := f.deliver(t, seq)
				sent[m.ID] = m
				copies += len(m.Rcpt)
			}
			res, err := FinalRead(context.Background(), f.opts, f.accts, FinalReadConfig{Round: 1, Concurrency: 3})
			if err != nil {
				t.Fatal(err)
			}
			if res.Mailboxes != 5 || res.Messages != copies {
				t.Fatalf("result %+v, want 5 mailboxes and %d messages", res, copies)
			}
			recs := f.hist.records(t)
			finals := filter(recs, func(r history.Record) bool { return r.Type == history.TypeFinal })
			if len(finals) != copies {
				t.Fatalf("%d final records, want %d", len(finals), copies)
			}
			for _, r := range finals {
				m := sent[r.MsgID]
				if m == nil || r.BodySHA256 != m.BodySHA256 || r.UIDValidity == 0 || r.Attempt != 1 {
					t.Errorf("final record %+v", r)
				}
				if !slices.Contains(m.Rcpt, r.Mailbox[:len(r.Mailbox)-len("/INBOX")]) {
					t.Errorf("%s found in %s, not a recipient", r.MsgID, r.Mailbox)
				}
			}
			phases := filter(recs, func(r history.Record) bool { return r.Kind == history.KindPhase })
			if len(phases) != 2 || phases[0].Phase() != history.PhaseFinalRead || phases[1].Phase() != history.PhaseFinalReadDone {
				t.Errorf("phases %+v", phases)
			}
		})
	}
}

func TestFinalReadReportsCorruption(t *testing.T) {
	f := newFixture(t, 2, false)
	f.store.SetCorrupt(func(b []byte) []byte {
		b[len(b)-10] ^= 0x20 // one flipped bit near the end of the body
		return b
	})
	m := f.deliver(t, 1)
	if _, err := FinalRead(context.Background(), f.opts, f.accts, FinalReadConfig{Round: 1}); err != nil {
		t.Fatal(err)
	}
	for _, r := range filter(f.hist.records(t), func(r history.Record) bool { return r.Type == history.TypeFinal }) {
		if r.MsgID != m.ID || r.BodySHA256 == m.BodySHA256 {
			t.Errorf("corruption not visible: %+v", r)
		}
	}

	// A verifier reports it as it happens.
	v := NewMember(RoleVerifier, 1, Account{m.Rcpt[0], "pass-" + m.Rcpt[0][4:8]}, 50*time.Millisecond, f.opts)
	var tr tracker
	tr.validity = 0
	ctx := context.Background()
	v.pollRound(ctx, &tr, true) // baseline: nothing is new yet
	m2 := f.deliver(t, 2)
	if !slices.Contains(m2.Rcpt, m.Rcpt[0]) {
		f.store.Deliver(m.Rcpt[0], m2.Bytes)
	}
	v.pollRound(ctx, &tr, true)
	v.Client.Close()
	mism := filter(f.hist.records(t), func(r history.Record) bool {
		return r.Type == history.TypeOp && r.Scope == history.ScopeOp && r.Class == ClassHashMismatch
	})
	if len(mism) != 1 || mism[0].MsgID != m2.ID {
		t.Errorf("verifier mismatches %+v", mism)
	}
	if f.opts.Stats != nil {
		t.Log(f.opts.Stats.Snapshot())
	}
}

func TestPopulationsSeeAndFlag(t *testing.T) {
	f := newFixture(t, 1, false)
	f.opts.Stats = &Stats{}
	acct := f.accts[0]
	f.deliver(t, 1) // before the run: not "seen"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	members := []*Member{
		NewMember(RoleWatcher, 1, acct, 0, f.opts),
		NewMember(RolePoller, 1, acct, 100*time.Millisecond, f.opts),
		NewMember(RoleVerifier, 1, acct, 100*time.Millisecond, f.opts),
		NewMember(RoleFlagger, 1, acct, 100*time.Millisecond, f.opts),
	}
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx, stop) }()
	}
	time.Sleep(500 * time.Millisecond)
	delivered := time.Now()
	m := f.deliver(t, 2)
	deadline := time.Now().Add(5 * time.Second)
	for f.opts.Stats.Seen.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	recs := f.hist.records(t)
	seen := filter(recs, func(r history.Record) bool { return r.Type == history.TypeSeen && r.MsgID == m.ID })
	byClient := map[string]history.Record{}
	for _, r := range seen {
		byClient[r.Client] = r
	}
	w, ok := byClient["imap-idle-1"]
	if !ok {
		t.Fatalf("watcher did not see %s; seen: %+v", m.ID, seen)
	}
	lat := w.Start.Duration() - f.hist.w.Clock().At(delivered).Duration()
	if lat < 0 || lat > time.Second {
		t.Errorf("watcher latency %v", lat)
	}
	if _, ok := byClient["imap-poll-1"]; !ok {
		t.Errorf("poller did not see it")
	}
	if v, ok := byClient["imap-verify-1"]; !ok || v.BodySHA256 != m.BodySHA256 {
		t.Errorf("verifier: %+v", v)
	}
	if n := len(filter(recs, func(r history.Record) bool { return r.Type == history.TypeSeen && r.MsgID != m.ID })); n != 0 {
		t.Errorf("%d seen records for the message that predates the run", n)
	}
	stores := filter(recs, func(r history.Record) bool {
		return r.Kind == history.KindIMAPStore && r.Scope == history.ScopeOp && r.Outcome == history.OK
	})
	if len(stores) != 2 || !slices.Equal(stores[0].Flags, []string{`\Seen`}) {
		t.Errorf("stores %+v", stores)
	}
	fails := filter(recs, func(r history.Record) bool { return r.Type == history.TypeOp && r.Outcome != history.OK })
	if len(fails) != 0 {
		t.Errorf("failures against a healthy server: %+v", fails)
	}
	// The flags persist: the final read shows them.
	if _, err := FinalRead(context.Background(), f.opts, f.accts, FinalReadConfig{Round: 1}); err != nil {
		t.Fatal(err)
	}
	for _, r := range filter(f.hist.records(t), func(r history.Record) bool { return r.Type == history.TypeFinal }) {
		if !slices.Contains(r.Flags, `\Seen`) {
			t.Errorf("final %s flags %v", r.MsgID, r.Flags)
		}
	}
}

func TestSilentServerAndBadLogin(t *testing.T) {
	addr := testsrv.StartRaw(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })
	h := newHist(t)
	o := Options{Addr: addr, Recorder: h.w, Policy: retry.Policy{MaxAttempts: 2, Budget: 5 * time.Second, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		Timeouts: Timeouts{Command: 200 * time.Millisecond}}
	start := time.Now()
	res, err := FinalRead(context.Background(), o, []Account{{"user0001@example.test", "x"}}, FinalReadConfig{Round: 1})
	if err == nil || len(res.Failed) != 1 {
		t.Fatalf("final read against a silent server: %+v %v", res, err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	recs := h.records(t)
	att := filter(recs, func(r history.Record) bool { return r.Scope == history.ScopeAttempt })
	if len(att) != 2 || att[0].Class != "timeout" || att[0].Stage != StageGreeting {
		t.Errorf("attempts %+v", att)
	}
	if slices.ContainsFunc(recs, func(r history.Record) bool { return r.Phase() == history.PhaseFinalReadDone }) {
		t.Error("final-read-done recorded for an incomplete round")
	}

	f := newFixture(t, 1, false)
	res, err = FinalRead(context.Background(), f.opts, []Account{{f.accts[0].Address, "wrong"}}, FinalReadConfig{Round: 1})
	if err == nil {
		t.Fatal("bad password accepted")
	}
	att = filter(f.hist.records(t), func(r history.Record) bool { return r.Scope == history.ScopeAttempt })
	if len(att) != 1 || att[0].Class != "imap:AUTHENTICATIONFAILED" || att[0].Stage != StageAuth {
		t.Errorf("bad login attempts %+v", att)
	}
}

// A message that arrives while a watcher looks after an EXISTS is stamped
// with when the look listed it, not with the EXISTS that came before it:
// otherwise its UID seems observed before lower UIDs were even sent (the
// uid-order check's false alarm).
func TestWatcherStampsOnlyAnnouncedMessagesWithTheExists(t *testing.T) {
	f := newFixture(t, 1, false)
	f.opts.Stats = &Stats{}
	acct := f.accts[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	w := NewMember(RoleWatcher, 1, acct, 0, f.opts)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, stop) }()
	time.Sleep(500 * time.Millisecond) // baseline taken, IDLE running

	var (
		late   *corpus.Message
		lateAt time.Time
		once   sync.Once
	)
	f.store.OnList(func() {
		once.Do(func() {
			lateAt = time.Now()
			late = f.deliver(t, 3)
		})
	})
	announced := f.deliver(t, 2)
	deadline := time.Now().Add(5 * time.Second)
	for f.opts.Stats.Seen.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done

	recs := f.hist.records(t)
	seen := map[string]history.Record{}
	for _, r := range filter(recs, func(r history.Record) bool { return r.Type == history.TypeSeen }) {
		seen[r.MsgID] = r
	}
	a, ok := seen[announced.ID]
	if !ok || late == nil {
		t.Fatalf("watcher saw %v; want %s and the late message", seen, announced.ID)
	}
	b, ok := seen[late.ID]
	if !ok {
		t.Fatalf("watcher did not see the message that arrived during its look; seen %v", seen)
	}
	arrived := f.hist.w.Clock().At(lateAt)
	if b.Start < arrived {
		t.Errorf("late message stamped visible at %v, before it arrived at %v", b.Start, arrived)
	}
	if a.Start >= arrived {
		t.Errorf("announced message stamped at %v, not with its EXISTS (before %v)", a.Start, arrived)
	}
}
