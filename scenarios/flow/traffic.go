package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen"
	"github.com/mailchaos/mailchaos/loadgen/imapload"
)

// stackTraffic drives a running stack through its client endpoints with
// the load generator: SMTP senders at --rate (open model, port 25 and
// submission) and IMAP watchers, pollers, verifiers and flag setters.
type stackTraffic struct {
	p   Params
	log *slog.Logger
	w   *history.Writer
	cfg loadgen.Config
	// replicas is each mailbox replica's IMAP address, by name.
	replicas map[string]string
}

var _ Traffic = (*stackTraffic)(nil)

func newStackTraffic(env *harness.Env, w *history.Writer, p Params, log *slog.Logger) (*stackTraffic, error) {
	users := env.Users()
	if len(users) == 0 {
		return nil, errors.New("traffic: the stack has no test users")
	}
	if p.Users > 0 && len(users) > p.Users {
		users = users[:p.Users]
	}
	cfg := loadgen.Config{
		RunID:         env.RunID(),
		Seed:          p.Seed,
		CACertPEM:     env.CACertPEM(),
		TLSServerName: "localhost",
		Logger:        log,
	}
	for _, u := range users {
		cfg.Users = append(cfg.Users, loadgen.User{Address: u.Address, Password: u.Password})
	}
	var err error
	if cfg.Endpoints.SMTP, err = env.Endpoint("smtp"); err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	// Submission and IMAP are optional for a stack; IMAP is needed for the
	// final read, without which every verdict is unknown.
	cfg.Endpoints.Submission, _ = env.Endpoint("submission")
	if cfg.Endpoints.IMAP, err = env.Endpoint("imap"); err != nil {
		return nil, fmt.Errorf("traffic: %w (the final read needs IMAP)", err)
	}
	n := len(users)
	cfg.IMAP = loadgen.IMAPConfig{
		Watchers:    min(n, 8),
		Pollers:     min(n, 2),
		Verifiers:   min(n, 2),
		FlagSetters: min(n, 1),
	}
	// Enough senders that a healthy stack drops no arrival: about four
	// seconds' worth of arrivals in flight (a new session's STARTTLS and
	// AUTH take a while on a busy host), at least 8.
	cfg.SMTP = loadgen.SMTPConfig{Model: loadgen.ModelOpen, Rate: p.Rate, Workers: min(max(int(math.Ceil(p.Rate*4)), 8), 400)}
	replicas, err := env.Replicas()
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	return &stackTraffic{p: p, log: log, w: w, cfg: cfg, replicas: replicas}, nil
}

// Load runs the load for d. Each phase gets its own message-ID prefix
// (<stack run id>-<phase>), so the steady and the load phase never reuse
// an ID.
func (t *stackTraffic) Load(ctx context.Context, phase history.Phase, d time.Duration) error {
	cfg := t.cfg
	cfg.RunID = t.cfg.RunID + "-" + string(phase)
	cfg.SMTP.Duration = d
	cfg.SMTP.MaxMessages = int(math.Ceil(t.p.Rate*d.Seconds())) + 1
	sum, err := loadgen.Run(ctx, cfg, t.w)
	t.log.Info("load summary", "phase", phase, "elapsed", sum.Elapsed.Round(time.Millisecond),
		"accepted", sum.SMTP.Accepted, "failed", sum.SMTP.Failed, "indeterminate", sum.SMTP.Indeterminate,
		"dropped", sum.SMTP.Dropped, "seen", sum.IMAP.Seen, "accepted_per_s", fmt.Sprintf("%.1f", sum.AcceptedPerSec))
	return err
}

// FinalRead reads every test mailbox into w (loadgen frames the round
// with the final-read phase events).
func (t *stackTraffic) FinalRead(ctx context.Context, w *history.Writer, round int) error {
	res, err := loadgen.FinalRead(ctx, t.cfg, w, round)
	return t.logRead(fmt.Sprintf("final read round %d", round), res, err)
}

// Replicas names the stack's mailbox replicas, sorted.
func (t *stackTraffic) Replicas() []string { return slices.Sorted(maps.Keys(t.replicas)) }

// ReadReplica reads every test mailbox on replica name, directly.
func (t *stackTraffic) ReadReplica(ctx context.Context, w *history.Writer, name string) error {
	addr, ok := t.replicas[name]
	if !ok {
		return fmt.Errorf("read replica %q: the stack declares no such replica (%v)", name, t.Replicas())
	}
	res, err := loadgen.ReadReplica(ctx, t.cfg, w, name, addr)
	return t.logRead("read of replica "+name, res, err)
}

// logRead logs a read's result and turns an incomplete read into an error.
func (t *stackTraffic) logRead(what string, res imapload.FinalReadResult, err error) error {
	t.log.Info(what, "mailboxes", res.Mailboxes, "messages", res.Messages,
		"failed", len(res.Failed), "elapsed", res.Elapsed.Round(time.Millisecond))
	if err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("%s: %d mailboxes unreadable, first %s", what, len(res.Failed), res.Failed[0])
	}
	return nil
}
