// Package loadgen drives a mail platform the way its users do and records
// everything in a history: SMTP senders (open or closed model, port 25 and
// submission) carrying a seeded MIME corpus, and IMAP clients that watch,
// poll, verify and flag the test mailboxes, plus the final read that lists
// every test mailbox once faults have healed.
//
// Scenarios call Run for the load phase and FinalRead for each final-read
// round; both write into the run's history.Writer. The sub-packages hold
// the parts: corpus (messages), smtpload (senders, models), imapload (IMAP
// clients, final read), retry (the client policy), netx (deadlines and
// watchdogs). loadgen knows nothing of faults or of the stack: it only sees
// endpoints, users and a CA.
package loadgen

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

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/imapload"
	"github.com/mailchaos/mailchaos/loadgen/retry"
	"github.com/mailchaos/mailchaos/loadgen/smtpload"
)

// Endpoints are the client-facing addresses (host:port) of the stack.
type Endpoints struct {
	SMTP       string // port 25 style: plain SMTP, no auth
	Submission string // port 587 style: STARTTLS + AUTH PLAIN
	IMAP       string // IMAP, STARTTLS when a CA is given
}

// User is a test user.
type User struct {
	Address, Password string
}

// Model is an SMTP load model.
type Model string

// The load models.
const (
	// ModelOpen is an arrival rate (constant or ramping): arrivals that find
	// no idle sender are dropped and counted, never queued.
	ModelOpen Model = "open"
	// ModelClosed is N sessions sending back to back.
	ModelClosed Model = "closed"
)

// SMTPConfig shapes the SMTP load.
type SMTPConfig struct {
	Model Model // default open
	// Open model: a constant Rate (messages/s) for Duration, or, if Ramp is
	// set, StartRate then the ramp stages (Duration is then their sum).
	Rate      float64
	StartRate float64
	Ramp      []smtpload.Stage
	Workers   int // open model: senders (max concurrent sessions), default 32
	// Closed model.
	Sessions int           // senders, default 8
	Think    time.Duration // pause between two sends of a sender
	// Both models stop at Duration or MaxMessages, whichever comes first.
	Duration    time.Duration
	MaxMessages int
	// MsgsPerSession is how many messages one SMTP session carries (default 10).
	MsgsPerSession int
	// Submission is the share of senders using the submission endpoint
	// (0..1). Default: 0.5 with both endpoints, else whichever is set.
	Submission *float64
}

// IMAPConfig shapes the IMAP populations and the final read.
type IMAPConfig struct {
	Watchers, Pollers, Verifiers, FlagSetters int
	// PollInterval is the pause between rounds of pollers, verifiers and
	// flag setters (default 2s).
	PollInterval time.Duration
	// Tail keeps the populations running after the SMTP load ends, to see
	// the last deliveries (default 10s).
	Tail time.Duration
	// FinalReadConcurrency bounds the final read's connections (default 16).
	FinalReadConcurrency int
}

// Progress is what a scenario can show while the load runs.
type Progress struct {
	Elapsed time.Duration
	SMTP    smtpload.Snapshot
	IMAP    imapload.Snapshot
	// AcceptedPerSec is the accepted-message rate since the last report.
	AcceptedPerSec float64
}

// Config is a load run. Validate reports every problem at once.
type Config struct {
	RunID     string
	Seed      int64
	Endpoints Endpoints
	Users     []User
	// CACertPEM is the CA the clients trust for STARTTLS (submission, IMAP).
	CACertPEM []byte
	// TLSServerName overrides the name checked in server certificates
	// (default: the endpoint's host).
	TLSServerName string

	SMTP SMTPConfig
	IMAP IMAPConfig
	// Corpus shapes the messages; Seed, RunID and Recipients are filled in
	// from this Config.
	Corpus corpus.Options
	// Retry is the client policy (zero fields: retry.Default).
	Retry        retry.Policy
	SMTPTimeouts smtpload.Timeouts
	IMAPTimeouts imapload.Timeouts

	// Progress, if set, is called every ProgressEvery (default 1s) during Run.
	Progress      func(Progress)
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

func (c Config) submissionShare() float64 {
	if c.SMTP.Submission != nil {
		return *c.SMTP.Submission
	}
	switch {
	case c.Endpoints.Submission == "":
		return 0
	case c.Endpoints.SMTP == "":
		return 1
	}
	return 0.5
}

func (c Config) withDefaults() Config {
	if c.SMTP.Model == "" {
		c.SMTP.Model = ModelOpen
	}
	if c.SMTP.Workers == 0 {
		c.SMTP.Workers = 32
	}
	if c.SMTP.Sessions == 0 {
		c.SMTP.Sessions = 8
	}
	if c.SMTP.MsgsPerSession == 0 {
		c.SMTP.MsgsPerSession = 10
	}
	if c.SMTP.Model == ModelOpen && len(c.SMTP.Ramp) > 0 {
		var d time.Duration
		for _, s := range c.SMTP.Ramp {
			d += s.Duration
		}
		c.SMTP.Duration = d
	}
	if c.IMAP.PollInterval == 0 {
		c.IMAP.PollInterval = 2 * time.Second
	}
	if c.IMAP.Tail == 0 {
		c.IMAP.Tail = 10 * time.Second
	}
	if c.IMAP.FinalReadConcurrency == 0 {
		c.IMAP.FinalReadConcurrency = 16
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Retry = c.Retry.WithDefaults()
	c.SMTPTimeouts = c.SMTPTimeouts.WithDefaults()
	c.IMAPTimeouts = c.IMAPTimeouts.WithDefaults()
	c.Corpus.Seed, c.Corpus.RunID = c.Seed, c.RunID
	c.Corpus.Recipients = nil
	for _, u := range c.Users {
		c.Corpus.Recipients = append(c.Corpus.Recipients, u.Address)
	}
	return c
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.RunID == "" {
		add("run id is empty")
	}
	if len(c.Users) == 0 {
		add("no users")
	}
	for i, u := range c.Users {
		if u.Address == "" {
			add("user %d: empty address", i+1)
		}
	}
	if c.Endpoints.SMTP == "" && c.Endpoints.Submission == "" {
		add("no SMTP endpoint: set smtp, submission or both")
	}
	if c.Endpoints.Submission != "" && len(c.CACertPEM) == 0 {
		add("submission endpoint needs the CA certificate (STARTTLS)")
	}
	if len(c.CACertPEM) > 0 && !x509.NewCertPool().AppendCertsFromPEM(c.CACertPEM) {
		add("CA certificate: no PEM certificate found")
	}
	if s := c.submissionShare(); !(s >= 0 && s <= 1) || (s > 0 && c.Endpoints.Submission == "") || (s < 1 && c.Endpoints.SMTP == "") { // !(...) refuses NaN
		add("submission share %v does not fit the endpoints given", s)
	}
	switch c.SMTP.Model {
	case ModelOpen:
		if len(c.SMTP.Ramp) == 0 && !(c.SMTP.Rate > 0 && !math.IsInf(c.SMTP.Rate, 1)) { // refuses NaN too
			add("open model: rate %v, want a finite rate > 0 (or a ramp)", c.SMTP.Rate)
		}
		if err := c.schedule().Validate(); len(c.SMTP.Ramp) > 0 && err != nil {
			errs = append(errs, err)
		}
		if c.SMTP.Workers < 1 {
			add("open model: workers %d, want >= 1", c.SMTP.Workers)
		}
	case ModelClosed:
		if c.SMTP.Sessions < 1 {
			add("closed model: sessions %d, want >= 1", c.SMTP.Sessions)
		}
	default:
		add("model %q is not open or closed", c.SMTP.Model)
	}
	if c.SMTP.Duration <= 0 {
		add("duration %v, want > 0: every load is bounded in time", c.SMTP.Duration)
	}
	if c.SMTP.MaxMessages <= 0 {
		add("max messages %d, want > 0: every load is bounded in count", c.SMTP.MaxMessages)
	}
	im := c.IMAP
	if im.Watchers < 0 || im.Pollers < 0 || im.Verifiers < 0 || im.FlagSetters < 0 {
		add("negative IMAP population")
	}
	if im.Watchers+im.Pollers+im.Verifiers+im.FlagSetters > 0 && c.Endpoints.IMAP == "" {
		add("IMAP populations need the imap endpoint")
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Users) > 0 && c.RunID != "" {
		if err := c.Corpus.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid load config: %w", err)
	}
	return nil
}

func (c Config) schedule() smtpload.Schedule {
	if len(c.SMTP.Ramp) > 0 {
		return smtpload.Schedule{StartRate: c.SMTP.StartRate, Stages: c.SMTP.Ramp}
	}
	return smtpload.Constant(c.SMTP.Rate, c.SMTP.Duration)
}

func (c Config) tls() (*tls.Config, error) {
	if len(c.CACertPEM) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CACertPEM) {
		return nil, errors.New("CA certificate: no PEM certificate found")
	}
	return &tls.Config{RootCAs: pool, ServerName: c.TLSServerName, MinVersion: tls.VersionTLS12}, nil
}

func (c Config) imapOptions(w imapload.Recorder, stats *imapload.Stats) (imapload.Options, error) {
	t, err := c.tls()
	if err != nil {
		return imapload.Options{}, err
	}
	return imapload.Options{Addr: c.Endpoints.IMAP, TLS: t, Timeouts: c.IMAPTimeouts, Policy: c.Retry, Recorder: w, Stats: stats, Seed: c.Seed}, nil
}

// Summary is the outcome of Run.
type Summary struct {
	Elapsed time.Duration
	Load    smtpload.LoadResult
	SMTP    smtpload.Snapshot
	IMAP    imapload.Snapshot
	// AcceptedPerSec is accepted messages over the load's elapsed time.
	AcceptedPerSec float64
}

// Run runs the load: the IMAP populations start, the SMTP model runs until
// its duration or message count, the populations keep watching for
// IMAP.Tail, then everything logs out. Every record goes to w. Run returns
// when all of it is done; it is bounded by the configuration even if ctx has
// no deadline.
func Run(ctx context.Context, cfg Config, w *history.Writer) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	cfg = cfg.withDefaults()
	gen, err := corpus.New(cfg.Corpus)
	if err != nil {
		return Summary{}, fmt.Errorf("load: build corpus: %w", err)
	}
	tlsCfg, err := cfg.tls()
	if err != nil {
		return Summary{}, fmt.Errorf("load: %w", err)
	}
	// The hard bound of the whole run: load, the last op's retry budget,
	// the tail, and room to log out.
	hard := cfg.SMTP.Duration + cfg.Retry.Budget + cfg.IMAP.Tail + 2*cfg.SMTPTimeouts.Data + time.Minute
	ctx, cancel := context.WithTimeout(ctx, hard)
	defer cancel()
	start := time.Now()

	imapStats := &imapload.Stats{}
	iopts, err := cfg.imapOptions(w, imapStats)
	if err != nil {
		return Summary{}, fmt.Errorf("load: %w", err)
	}
	stop := make(chan struct{})
	var members sync.WaitGroup
	n := 0
	for _, p := range []struct {
		role  string
		count int
	}{{imapload.RoleWatcher, cfg.IMAP.Watchers}, {imapload.RolePoller, cfg.IMAP.Pollers}, {imapload.RoleVerifier, cfg.IMAP.Verifiers}, {imapload.RoleFlagger, cfg.IMAP.FlagSetters}} {
		for i := range p.count {
			u := cfg.Users[n%len(cfg.Users)]
			n++
			m := imapload.NewMember(p.role, i+1, imapload.Account{Address: u.Address, Password: u.Password}, cfg.IMAP.PollInterval, iopts)
			members.Add(1)
			go func() {
				defer members.Done()
				m.Run(ctx, stop)
			}()
		}
	}

	smtpStats := &smtpload.Stats{}
	nSenders := cfg.SMTP.Workers
	if cfg.SMTP.Model == ModelClosed {
		nSenders = cfg.SMTP.Sessions
	}
	share := cfg.submissionShare()
	senders := make([]*smtpload.Sender, nSenders)
	for i := range senders {
		u := cfg.Users[i%len(cfg.Users)]
		ep := smtpload.Endpoint{Addr: cfg.Endpoints.SMTP}
		// Spread submission senders evenly among the others.
		if math.Floor(float64(i+1)*share) > math.Floor(float64(i)*share) {
			ep = smtpload.Endpoint{Addr: cfg.Endpoints.Submission, Submission: true, TLS: tlsCfg}
		}
		senders[i] = smtpload.NewSender(smtpload.SenderConfig{
			Name: fmt.Sprintf("smtp-%d", i+1), Endpoint: ep, User: smtpload.User{Address: u.Address, Password: u.Password},
			Corpus: gen, Policy: cfg.Retry, Timeouts: cfg.SMTPTimeouts, MsgsPerSession: cfg.SMTP.MsgsPerSession,
			Recorder: w, Stats: smtpStats, Seed: cfg.Seed,
		})
	}

	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	if cfg.Progress != nil {
		progWG.Add(1)
		go func() {
			defer progWG.Done()
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			var prev int64
			last := time.Now()
			for {
				select {
				case <-progDone:
					return
				case <-ctx.Done():
					return
				case now := <-t.C:
					s := smtpStats.Snapshot()
					cfg.Progress(Progress{Elapsed: time.Since(start), SMTP: s, IMAP: imapStats.Snapshot(),
						AcceptedPerSec: float64(s.Accepted-prev) / now.Sub(last).Seconds()})
					prev, last = s.Accepted, now
				}
			}
		}()
	}

	cfg.Logger.Info("load starting", "run", cfg.RunID, "seed", cfg.Seed, "model", cfg.SMTP.Model,
		"senders", nSenders, "imap_clients", n, "duration", cfg.SMTP.Duration, "max_messages", cfg.SMTP.MaxMessages)
	var res smtpload.LoadResult
	var loadErr error
	switch cfg.SMTP.Model {
	case ModelOpen:
		res, loadErr = smtpload.RunOpen(ctx, smtpload.OpenConfig{Schedule: cfg.schedule(), MaxMessages: cfg.SMTP.MaxMessages}, senders)
	default:
		res, loadErr = smtpload.RunClosed(ctx, smtpload.ClosedConfig{Duration: cfg.SMTP.Duration, MaxMessages: cfg.SMTP.MaxMessages, Think: cfg.SMTP.Think}, senders)
	}
	if n > 0 {
		tail := time.NewTimer(cfg.IMAP.Tail)
		select {
		case <-tail.C:
		case <-ctx.Done():
		}
		tail.Stop()
	}
	close(stop)
	members.Wait()
	close(progDone)
	progWG.Wait()

	sum := Summary{Elapsed: time.Since(start), Load: res, SMTP: smtpStats.Snapshot(), IMAP: imapStats.Snapshot()}
	if res.Elapsed > 0 {
		sum.AcceptedPerSec = float64(sum.SMTP.Accepted) / res.Elapsed.Seconds()
	}
	cfg.Logger.Info("load done", "accepted", sum.SMTP.Accepted, "failed", sum.SMTP.Failed, "indeterminate", sum.SMTP.Indeterminate,
		"dropped", sum.SMTP.Dropped, "seen", sum.IMAP.Seen, "hash_mismatches", sum.IMAP.HashMismatches)
	if loadErr != nil {
		return sum, fmt.Errorf("load: %w", loadErr)
	}
	return sum, nil
}

// FinalRead runs final-read round `round` over every user's INBOX (see
// imapload.FinalRead): final records framed by final-read and, if every
// mailbox was read, final-read-done.
func FinalRead(ctx context.Context, cfg Config, w *history.Writer, round int) (imapload.FinalReadResult, error) {
	return readAll(ctx, cfg, w, imapload.FinalReadConfig{Round: round, Concurrency: cfg.IMAP.FinalReadConcurrency})
}

// ReadReplica reads every user's INBOX on one mailbox replica, reached
// directly at addr rather than through the IMAP endpoint: final records
// carrying the replica's name, framed by replica-read and, if every
// mailbox was read, replica-read-done. The read's IMAP operations are not
// recorded: it audits the stack's replication, it is not client traffic,
// and a replica that cannot be read must not count as client downtime
// (the missing replica-read-done already makes it unjudged).
func ReadReplica(ctx context.Context, cfg Config, w *history.Writer, name, addr string) (imapload.FinalReadResult, error) {
	cfg.Endpoints.IMAP = addr
	return readAll(ctx, cfg, opless{w}, imapload.FinalReadConfig{Round: 1, Concurrency: cfg.IMAP.FinalReadConcurrency, Replica: name})
}

// opless records everything of a read but its operations.
type opless struct{ *history.Writer }

func (opless) Op(history.Record) error { return nil }

// readAll reads every user's INBOX at cfg's IMAP endpoint into rec.
func readAll(ctx context.Context, cfg Config, rec imapload.Recorder, frc imapload.FinalReadConfig) (imapload.FinalReadResult, error) {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.Endpoints.IMAP == "" {
		errs = append(errs, errors.New("no imap endpoint"))
	}
	if len(cfg.Users) == 0 {
		errs = append(errs, errors.New("no users"))
	}
	if err := errors.Join(errs...); err != nil {
		return imapload.FinalReadResult{}, fmt.Errorf("%s: %w", frc, err)
	}
	o, err := cfg.imapOptions(rec, &imapload.Stats{})
	if err != nil {
		return imapload.FinalReadResult{}, fmt.Errorf("%s: %w", frc, err)
	}
	accts := make([]imapload.Account, len(cfg.Users))
	for i, u := range cfg.Users {
		accts[i] = imapload.Account{Address: u.Address, Password: u.Password}
	}
	return imapload.FinalRead(ctx, o, accts, frc)
}
