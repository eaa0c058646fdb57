package flow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/history"
	"github.com/mailchaos/mailchaos/loadgen/smtpload"
)

// ErrNoFinalRead is returned by a final read while loadgen has no IMAP
// client: without a final read the ledger is unknown, and the gates fail.
var ErrNoFinalRead = errors.New("loadgen: no IMAP final read yet (loadgen IMAP clients not landed)")

// stackTraffic drives a running stack through its client endpoints with
// the load generator's SMTP senders (open model at --rate).
type stackTraffic struct {
	p      Params
	log    *slog.Logger
	w      *history.Writer
	gen    *corpus.Generator
	users  []harness.User
	smtp   string // 127.0.0.1:port of the smtp endpoint
	sub    string // of the submission endpoint ("" if the stack has none)
	tlsCfg *tls.Config
	stats  smtpload.Stats
	mu     sync.Mutex
}

func newStackTraffic(env *harness.Env, w *history.Writer, p Params, log *slog.Logger) (*stackTraffic, error) {
	users := env.Users()
	if len(users) == 0 {
		return nil, errors.New("traffic: the stack has no test users")
	}
	if p.Users > 0 && len(users) > p.Users {
		users = users[:p.Users]
	}
	rcpts := make([]string, len(users))
	for i, u := range users {
		rcpts[i] = u.Address
	}
	gen, err := corpus.New(corpus.Options{Seed: p.Seed, RunID: env.RunID(), Recipients: rcpts})
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	smtpAddr, err := env.Endpoint("smtp")
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	t := &stackTraffic{p: p, log: log, w: w, gen: gen, users: users, smtp: smtpAddr}
	if sub, err := env.Endpoint("submission"); err == nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(env.CACertPEM()) {
			return nil, errors.New("traffic: the run's CA certificate does not parse")
		}
		t.sub = sub
		t.tlsCfg = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	}
	return t, nil
}

// senders returns enough senders for rate: the open model drops an arrival
// that finds every sender busy, so there are about rate x 2 s of them
// (a send takes well under that when the stack is healthy), at least 4.
// Every fourth sender uses submission (STARTTLS + AUTH) when the stack has it.
func (t *stackTraffic) senders(phase string) []*smtpload.Sender {
	n := int(math.Ceil(t.p.Rate * 2))
	n = min(max(n, 4), 200)
	out := make([]*smtpload.Sender, n)
	for i := range out {
		u := t.users[i%len(t.users)]
		ep := smtpload.Endpoint{Addr: t.smtp}
		if t.sub != "" && i%4 == 3 {
			ep = smtpload.Endpoint{Addr: t.sub, Submission: true, TLS: t.tlsCfg}
		}
		out[i] = smtpload.NewSender(smtpload.SenderConfig{
			Name:     fmt.Sprintf("smtp-%s-%d", phase, i+1),
			Endpoint: ep,
			User:     smtpload.User{Address: u.Address, Password: u.Password},
			Corpus:   t.gen,
			Recorder: t.w,
			Stats:    &t.stats,
			Seed:     t.p.Seed + int64(i),
		})
	}
	return out
}

// Load runs the open model at --rate for d, message stream = phase.
func (t *stackTraffic) Load(ctx context.Context, phase string, d time.Duration) error {
	res, err := smtpload.RunOpen(ctx, smtpload.OpenConfig{
		Schedule:    smtpload.Constant(t.p.Rate, d),
		MaxMessages: int(math.Ceil(t.p.Rate*d.Seconds())) + 1,
		Stream:      phase,
	}, t.senders(phase))
	t.log.Info("load done", "phase", phase, "dispatched", res.Dispatched, "dropped", res.Dropped,
		"accepted", t.stats.Accepted.Load(), "failed", t.stats.Failed.Load(), "indeterminate", t.stats.Indeterminate.Load())
	if err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}

// FinalRead lists every mailbox over IMAP.
func (t *stackTraffic) FinalRead(ctx context.Context, w *history.Writer, round int) error {
	return ErrNoFinalRead
}
