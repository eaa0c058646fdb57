package loadgen_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen"
	"github.com/mailchaos/mailchaos/loadgen/internal/testsrv"
	"github.com/mailchaos/mailchaos/loadgen/retry"
	"github.com/mailchaos/mailchaos/loadgen/smtpload"
)

type stack struct {
	cfg  loadgen.Config
	smtp *testsrv.SMTP
	sub  *testsrv.SMTP
}

// newStack wires in-process SMTP (port 25 and submission) servers that
// deliver into an in-memory IMAP server.
func newStack(t *testing.T, users int, o testsrv.SMTPOptions) *stack {
	var us []loadgen.User
	logins := map[string]string{}
	for i := 1; i <= users; i++ {
		u := loadgen.User{Address: fmt.Sprintf("user%04d@example.test", i), Password: fmt.Sprintf("pass-%04d", i)}
		us = append(us, u)
		logins[u.Address] = u.Password
	}
	ca := testsrv.NewCA(t)
	store := testsrv.NewMailstore(logins)
	o.Store = store
	plain := testsrv.StartSMTP(t, o)
	o.TLS, o.Users = ca.Server, logins
	sub := testsrv.StartSMTP(t, o)
	return &stack{smtp: plain, sub: sub, cfg: loadgen.Config{
		RunID: "run-1", Seed: 11, Users: us, CACertPEM: ca.CertPEM,
		Endpoints: loadgen.Endpoints{SMTP: plain.Addr, Submission: sub.Addr, IMAP: store.StartIMAP(t, ca.Server)},
		Retry:     retry.Policy{MaxAttempts: 4, Budget: 5 * time.Second, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
	}}
}

type ledger struct {
	ops    map[string]history.Record // msg id -> op record
	finals map[string]map[string]int // msg id -> mailbox -> copies
	hashes map[string]string         // msg id -> hash found
	seen   map[string]bool
	phases []string
	fails  int
}

func readLedger(t *testing.T, path string) *ledger {
	l := &ledger{ops: map[string]history.Record{}, finals: map[string]map[string]int{}, hashes: map[string]string{}, seen: map[string]bool{}}
	_, err := history.Each(path, func(r history.Record) error {
		switch {
		case r.Type == history.TypeOp && r.Scope == history.ScopeOp:
			if r.Kind == history.KindSMTPSend {
				l.ops[r.MsgID] = r
			}
			if r.Outcome != history.OK {
				l.fails++
			}
		case r.Type == history.TypeFinal:
			if l.finals[r.MsgID] == nil {
				l.finals[r.MsgID] = map[string]int{}
			}
			l.finals[r.MsgID][r.Mailbox]++
			l.hashes[r.MsgID] = r.BodySHA256
		case r.Type == history.TypeSeen:
			l.seen[r.MsgID] = true
		case r.Kind == history.KindPhase:
			l.phases = append(l.phases, r.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRunAndFinalRead(t *testing.T) {
	st := newStack(t, 6, testsrv.SMTPOptions{})
	cfg := st.cfg
	cfg.SMTP = loadgen.SMTPConfig{Model: loadgen.ModelOpen, Rate: 40, Duration: 2 * time.Second, MaxMessages: 1000, Workers: 8}
	cfg.IMAP = loadgen.IMAPConfig{Watchers: 2, Pollers: 1, Verifiers: 1, FlagSetters: 1, PollInterval: 200 * time.Millisecond, Tail: time.Second}
	cfg.Corpus.MedianSize = 6 << 10
	var progress []loadgen.Progress
	cfg.Progress = func(p loadgen.Progress) { progress = append(progress, p) }
	cfg.ProgressEvery = 500 * time.Millisecond

	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(path, history.NewClock(), history.Header{RunID: cfg.RunID, Seed: cfg.Seed})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := loadgen.Run(ctx, cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	if sum.SMTP.Accepted < 70 || sum.SMTP.Failed+sum.SMTP.Indeterminate != 0 {
		t.Errorf("summary %+v", sum)
	}
	if sum.IMAP.Seen == 0 || sum.IMAP.Verified == 0 || sum.IMAP.HashMismatches != 0 || sum.IMAP.Stores == 0 {
		t.Errorf("imap %+v", sum.IMAP)
	}
	if len(progress) < 2 {
		t.Errorf("%d progress reports", len(progress))
	}
	if st.smtp.Conns() == 0 || st.sub.Conns() == 0 {
		t.Errorf("port 25 sessions %d, submission %d: want both used", st.smtp.Conns(), st.sub.Conns())
	}
	res, err := loadgen.FinalRead(ctx, cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l := readLedger(t, path)
	if len(l.ops) != int(sum.SMTP.Accepted) || l.fails != 0 {
		t.Errorf("%d send ops, %d failed ops", len(l.ops), l.fails)
	}
	copies := 0
	for id, op := range l.ops {
		for _, rcpt := range op.Rcpt {
			if l.finals[id][rcpt+"/INBOX"] != 1 {
				t.Errorf("%s: %d copies in %s", id, l.finals[id][rcpt+"/INBOX"], rcpt)
			}
			copies++
		}
		if l.hashes[id] != op.BodySHA256 {
			t.Errorf("%s: final hash %s, sent %s", id, l.hashes[id], op.BodySHA256)
		}
	}
	if res.Messages != copies {
		t.Errorf("final read %d messages, %d copies sent", res.Messages, copies)
	}
	if len(l.seen) == 0 {
		t.Error("no seen records")
	}
	if strings.Join(l.phases, ",") != "final-read,final-read-done" {
		t.Errorf("phases %v", l.phases)
	}
}

func TestRunCutAfterDotRecoversDuplicate(t *testing.T) {
	st := newStack(t, 3, testsrv.SMTPOptions{CutAfterDot: func(n int) bool { return n%5 == 0 }})
	cfg := st.cfg
	cfg.Endpoints.Submission = ""
	cfg.SMTP = loadgen.SMTPConfig{Model: loadgen.ModelClosed, Sessions: 2, Duration: 10 * time.Second, MaxMessages: 20}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, _ := history.Create(path, history.NewClock(), history.Header{RunID: cfg.RunID})
	ctx := context.Background()
	sum, err := loadgen.Run(ctx, cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	if sum.SMTP.Accepted != 20 || sum.SMTP.AttemptsIndeterminate < 3 {
		t.Fatalf("summary %+v", sum.SMTP)
	}
	if _, err := loadgen.FinalRead(ctx, cfg, w, 1); err != nil {
		t.Fatal(err)
	}
	w.Close()
	l := readLedger(t, path)
	dups := 0
	for id, op := range l.ops {
		for _, rcpt := range op.Rcpt {
			if n := l.finals[id][rcpt+"/INBOX"]; n > 1 {
				dups++
				if op.Attempt < 2 {
					t.Errorf("%s duplicated without a retry", id)
				}
			} else if n != 1 {
				t.Errorf("%s missing in %s", id, rcpt)
			}
		}
	}
	if dups == 0 {
		t.Error("no recovered duplicate in the final read")
	}
}

func TestConfigValidateAllProblems(t *testing.T) {
	err := loadgen.Config{
		Endpoints: loadgen.Endpoints{Submission: "127.0.0.1:1"},
		SMTP:      loadgen.SMTPConfig{Model: "bursty"},
		IMAP:      loadgen.IMAPConfig{Watchers: 1},
	}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"run id", "no users", "CA certificate", "model", "duration", "max messages", "imap endpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not in %v", want, err)
		}
	}
}

// NaN passes every comparison and Inf every lower bound: a rate, a
// submission share, a ramp, a corpus shape that is not finite is refused,
// naming what.
func TestConfigValidateRefusesNonFinite(t *testing.T) {
	valid := func() loadgen.Config {
		return loadgen.Config{
			RunID: "r", Users: []loadgen.User{{Address: "u@example.test"}},
			Endpoints: loadgen.Endpoints{SMTP: "127.0.0.1:1"},
			SMTP:      loadgen.SMTPConfig{Rate: 10, Duration: time.Second, MaxMessages: 10},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("the valid config: %v", err)
	}
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		set  func(c *loadgen.Config)
		want string
	}{
		{"rate NaN", func(c *loadgen.Config) { c.SMTP.Rate = nan }, "rate NaN, want a finite rate > 0"},
		{"rate +Inf", func(c *loadgen.Config) { c.SMTP.Rate = inf }, "rate +Inf, want a finite rate > 0"},
		{"rate -Inf", func(c *loadgen.Config) { c.SMTP.Rate = -inf }, "rate -Inf, want a finite rate > 0"},
		{"submission share NaN", func(c *loadgen.Config) { c.SMTP.Submission = &nan }, "submission share NaN"},
		{"ramp start NaN", func(c *loadgen.Config) {
			c.SMTP.StartRate, c.SMTP.Ramp = nan, []smtpload.Stage{{Duration: time.Second, Rate: 1}}
		}, "start rate NaN: not a finite number"},
		{"ramp stage +Inf", func(c *loadgen.Config) {
			c.SMTP.Ramp = []smtpload.Stage{{Duration: time.Second, Rate: inf}}
		}, "stage 1: rate +Inf: not a finite number"},
		{"corpus sigma NaN", func(c *loadgen.Config) { c.Corpus.Sigma = nan }, "sigma NaN, want a finite number"},
		{"corpus weight +Inf", func(c *loadgen.Config) { c.Corpus.Weights = [3]float64{1, inf, 1} }, "shape weight +Inf is not a finite number"},
		{"corpus weights sum past float64", func(c *loadgen.Config) {
			c.Corpus.Weights = [3]float64{math.MaxFloat64, math.MaxFloat64, 0}
		}, "shape weights sum to +Inf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.set(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestReadReplica reads a replica directly: its final records and framing
// events carry the replica's name, and none of its IMAP operations is
// recorded (an unreadable replica must not look like client downtime).
func TestReadReplica(t *testing.T) {
	st := newStack(t, 3, testsrv.SMTPOptions{})
	cfg := st.cfg
	cfg.Endpoints.Submission = ""
	cfg.SMTP = loadgen.SMTPConfig{Model: loadgen.ModelClosed, Sessions: 2, Duration: 10 * time.Second, MaxMessages: 12}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(path, history.NewClock(), history.Header{RunID: cfg.RunID})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sum, err := loadgen.Run(ctx, cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	replicaAddr := cfg.Endpoints.IMAP
	cfg.Endpoints.IMAP = "127.0.0.1:1" // the replica read must not use the endpoint
	res, err := loadgen.ReadReplica(ctx, cfg, w, "store-b", replicaAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var (
		inRead  bool
		phases  []string
		finals  int
		readOps int
	)
	if _, err := history.Each(path, func(r history.Record) error {
		switch {
		case r.Type == history.TypeEvent && r.Kind == history.KindPhase:
			phases = append(phases, r.Name+"@"+r.Target)
			inRead = r.Phase() == history.PhaseReplicaRead
		case r.Type == history.TypeFinal:
			finals++
			if r.Target != "store-b" {
				t.Errorf("final record of the replica read has target %q", r.Target)
			}
		case r.Type == history.TypeOp && inRead:
			readOps++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(phases, ","); got != "replica-read@store-b,replica-read-done@store-b" {
		t.Errorf("phases %s", got)
	}
	if readOps != 0 {
		t.Errorf("the replica read recorded %d operations", readOps)
	}
	if finals == 0 || finals != res.Messages || int64(finals) < sum.SMTP.Accepted {
		t.Errorf("%d final records, result says %d, %d accepted", finals, res.Messages, sum.SMTP.Accepted)
	}
}

// TestHistoryHoldsNoPassword: the history is evidence that ships in the
// bundle, so no password may be in it, neither the right ones (AUTH on
// submission, IMAP LOGIN) nor one a server refused (its error is recorded),
// nor their SASL base64 forms.
func TestHistoryHoldsNoPassword(t *testing.T) {
	st := newStack(t, 3, testsrv.SMTPOptions{})
	cfg := st.cfg
	cfg.Users = append([]loadgen.User(nil), cfg.Users...)
	cfg.Users[2].Password = "WRONGPASSWORDWRONGPASSWORD" // refused by every server
	cfg.SMTP = loadgen.SMTPConfig{Model: loadgen.ModelOpen, Rate: 20, Duration: time.Second, MaxMessages: 40, Workers: 4}
	cfg.IMAP = loadgen.IMAPConfig{Watchers: 3, Pollers: 3, PollInterval: 100 * time.Millisecond, Tail: 500 * time.Millisecond}
	cfg.Retry.MaxAttempts = 2
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(path, history.NewClock(), history.Header{RunID: cfg.RunID})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := loadgen.Run(ctx, cfg, w); err != nil {
		t.Fatal(err)
	}
	_, _ = loadgen.FinalRead(ctx, cfg, w, 1) // user 3's mailbox cannot be read: that is recorded too
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.sub.Conns() == 0 || !bytes.Contains(data, []byte(`"stage":"auth"`)) {
		t.Fatalf("want submission sessions (AUTH) and refused logins in the history: %d sessions", st.sub.Conns())
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, u := range cfg.Users {
		for _, secret := range []string{u.Password, b64([]byte(u.Password)), b64([]byte("\x00" + u.Address + "\x00" + u.Password))} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("the history holds %s's password (%q)", u.Address, secret)
			}
		}
	}
}
