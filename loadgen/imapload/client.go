// Package imapload runs the IMAP side of a mailchaos run with go-imap v2:
// populations of clients that watch, poll, verify and flag the test
// mailboxes during the load, and the final read that lists every message of
// every test mailbox once faults have healed.
//
// # Client policy (defines client-visible downtime)
//
// Every IMAP action is one logical operation (history scope "op") made of
// attempts (scope "attempt"). An attempt that fails because of the
// connection (refused, reset, EOF, timeout, TLS) or a temporary server
// answer (NO [UNAVAILABLE], BYE, any NO without a permanent code) drops the
// connection; the client then reconnects (dial, greeting, STARTTLS when
// configured, LOGIN, SELECT INBOX) and retries the action with exponential
// backoff and jitter, within the retry.Policy budget (default 8 attempts
// within 60 s, 250 ms doubling to 5 s). Permanent answers (BAD,
// NO [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED], [NONEXISTENT]) are not
// retried. The op fails only when the budget is spent: that is a
// client-visible failure, and the checkers build the downtime windows from
// failed ops. Attempts are recorded too, for the raw error picture.
//
// # Deadlines
//
// go-imap has fixed internal timeouts and no context. Each client dials its
// net.Conn itself (package netx): every command is bounded by a hard deadline
// the library cannot lift (the library's "no deadline while idle" becomes the
// client's keep-alive deadline), and a watchdog closes a stuck connection.
//
// # Populations
//
// IDLE watchers record when each new message first became visible ("seen"
// records, the start of delivery latency), pollers do the same with UID
// SEARCH and a FETCH of the identifying header, verifiers FETCH each new
// body and check it against its X-Mailchaos-Body-Sha256 header, and flag
// setters mark messages \Seen and record what they set (imap.store ops).
package imapload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/netx"
	"github.com/mailchaos/mailchaos/loadgen/retry"
)

// Stages of an IMAP attempt, as recorded in history.Record.Stage.
const (
	StageConnect  = "connect"
	StageGreeting = "greeting"
	StageTLS      = "tls"
	StageAuth     = "auth"
	StageSelect   = "select"
	StageSearch   = "search"
	StageFetch    = "fetch"
	StageIdle     = "idle"
	StageStore    = "store"
	StageLogout   = "logout"
)

// ClassHashMismatch marks a fetch whose body does not hash to its
// X-Mailchaos-Body-Sha256 header.
const ClassHashMismatch = "hash-mismatch"

// Recorder receives the records. *history.Writer implements it.
type Recorder interface {
	Op(r history.Record) error
	Seen(r history.Record) error
	Final(r history.Record) error
	PhaseOn(name history.Phase, target string, attempt int, detail string) error
	Clock() history.Clock
}

var _ Recorder = (*history.Writer)(nil)

// Account is a test user's IMAP login.
type Account struct {
	Address, Password string
}

// Mailbox returns the history name of the account's INBOX.
func (a Account) Mailbox() string { return a.Address + "/INBOX" }

// Timeouts bound the waits of an IMAP client.
type Timeouts struct {
	Dial    time.Duration // TCP connect (default 5s)
	Command time.Duration // each command, login and TLS included (default 30s)
	// Idle is the longest single IDLE before it is renewed (default 25s).
	Idle time.Duration
}

// WithDefaults returns t with zero fields set to their defaults.
func (t Timeouts) WithDefaults() Timeouts {
	if t.Dial == 0 {
		t.Dial = 5 * time.Second
	}
	if t.Command == 0 {
		t.Command = 30 * time.Second
	}
	if t.Idle == 0 {
		t.Idle = 25 * time.Second
	}
	return t
}

// Options are shared by every IMAP client of a run.
type Options struct {
	Addr string // host:port
	// TLS, if set, makes clients use STARTTLS with it (RootCAs = the run's
	// CA); ServerName defaults to the host of Addr.
	TLS      *tls.Config
	Timeouts Timeouts
	Policy   retry.Policy
	Recorder Recorder
	Stats    *Stats
	Seed     int64
}

func (o Options) withDefaults() Options {
	o.Timeouts = o.Timeouts.WithDefaults()
	o.Policy = o.Policy.WithDefaults()
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	return o
}

// Stats are counters shared by the IMAP clients of a run.
type Stats struct {
	Ops, OpFailures, Attempts, AttemptFailures atomic.Int64
	Reconnects                                 atomic.Int64
	Seen, Verified, HashMismatches, Stores     atomic.Int64
	FinalMessages, FinalMailboxes              atomic.Int64
}

// Snapshot is a copy of Stats at one instant.
type Snapshot struct {
	Ops, OpFailures, Attempts, AttemptFailures int64
	Reconnects                                 int64
	Seen, Verified, HashMismatches, Stores     int64
	FinalMessages, FinalMailboxes              int64
}

// Snapshot returns the current counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Ops: s.Ops.Load(), OpFailures: s.OpFailures.Load(), Attempts: s.Attempts.Load(), AttemptFailures: s.AttemptFailures.Load(),
		Reconnects: s.Reconnects.Load(), Seen: s.Seen.Load(), Verified: s.Verified.Load(), HashMismatches: s.HashMismatches.Load(),
		Stores: s.Stores.Load(), FinalMessages: s.FinalMessages.Load(), FinalMailboxes: s.FinalMailboxes.Load(),
	}
}

// session is one live, logged-in connection with INBOX selected.
type session struct {
	nc          *netx.Conn
	c           *imapclient.Client
	uidValidity uint32
	exists      chan struct{} // signalled on an unsolicited EXISTS

	mu        sync.Mutex
	announced announcement // the first EXISTS since the last look
}

// announcement is the message count of the first EXISTS a session received
// since its last look. Messages at sequence numbers up to count were in the
// mailbox at that instant; later ones arrived after it. An EXPUNGE since then
// shifts sequence numbers, so the count no longer says which are which.
type announcement struct {
	count    uint32
	set      bool
	expunged bool
}

// announce keeps the first EXISTS count until the next look takes it.
func (s *session) announce(n uint32) {
	s.mu.Lock()
	if !s.announced.set {
		s.announced = announcement{count: n, set: true}
	}
	s.mu.Unlock()
	select {
	case s.exists <- struct{}{}:
	default:
	}
}

// expunge notes an EXPUNGE: it makes a pending announcement unusable.
func (s *session) expunge() {
	s.mu.Lock()
	s.announced.expunged = true
	s.mu.Unlock()
}

// takeAnnouncement returns the pending announcement and clears it.
func (s *session) takeAnnouncement() announcement {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.announced
	s.announced = announcement{}
	return a
}

// Client is one IMAP client with the reconnect-and-retry policy. It is not
// safe for concurrent use.
type Client struct {
	name     string
	acct     Account
	o        Options
	rng      *rand.Rand
	readOnly bool
	// keep is how long an idle connection must survive between operations.
	keep time.Duration

	cur *session
}

// NewClient returns a client for acct; it connects lazily.
func NewClient(name string, acct Account, o Options) *Client {
	o = o.withDefaults()
	var h uint64 = 1469598103934665603
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return &Client{name: name, acct: acct, o: o, rng: rand.New(rand.NewPCG(uint64(o.Seed), h)), keep: o.Timeouts.Command}
}

// opError is a failed attempt with where it ended.
type opError struct {
	stage string
	err   error
	nc    *netx.Conn // the connection it happened on, for typed classification
}

func (e *opError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func at(stage string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{stage: stage, err: err}
}

// connect dials, greets, optionally STARTTLSes, logs in and selects INBOX.
func (cl *Client) connect(ctx context.Context) (*session, error) {
	to := cl.o.Timeouts
	nc, err := netx.Dial(ctx, cl.o.Addr, to.Dial, 2*to.Command)
	if err != nil {
		return nil, at(StageConnect, err)
	}
	s := &session{nc: nc, exists: make(chan struct{}, 1)}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					s.announce(*d.NumMessages)
				}
			},
			Expunge: func(uint32) { s.expunge() },
		},
	}
	fail := func(stage string, err error) (*session, error) {
		if s.c != nil {
			s.c.Close()
		}
		nc.Close()
		return nil, &opError{stage: stage, err: err, nc: nc}
	}
	if cl.o.TLS != nil {
		cfg := cl.o.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(cl.o.Addr)
		}
		opts.TLSConfig = cfg
		c, err := imapclient.NewStartTLS(nc, opts)
		if err != nil {
			stage := StageTLS
			if nc.BytesWritten() == 0 {
				stage = StageGreeting
			}
			return fail(stage, err)
		}
		s.c = c
	} else {
		s.c = imapclient.New(nc, opts)
		if err := s.c.WaitGreeting(); err != nil {
			return fail(StageGreeting, err)
		}
	}
	nc.ArmFor(to.Command)
	if err := s.c.Login(cl.acct.Address, cl.acct.Password).Wait(); err != nil {
		return fail(StageAuth, err)
	}
	nc.ArmFor(to.Command)
	sel, err := s.c.Select("INBOX", &imap.SelectOptions{ReadOnly: cl.readOnly}).Wait()
	if err != nil {
		return fail(StageSelect, err)
	}
	s.uidValidity = sel.UIDValidity
	nc.ArmFor(cl.keep)
	return s, nil
}

// drop closes the current connection without LOGOUT.
func (cl *Client) drop() {
	if cl.cur == nil {
		return
	}
	cl.cur.c.Close()
	cl.cur.nc.Close()
	cl.cur = nil
}

// Close logs out (bounded by the command timeout) and closes.
func (cl *Client) Close() {
	if cl.cur == nil {
		return
	}
	cl.cur.nc.ArmFor(cl.o.Timeouts.Command)
	_ = cl.cur.c.Logout().Wait()
	cl.drop()
}

// classify returns the class of an attempt's error and whether the policy
// retries it.
func classify(nc *netx.Conn, err error) (class string, retryable, keepConn bool) {
	var ie *imap.Error
	if errors.As(err, &ie) {
		if ie.Code != "" {
			class = "imap:" + string(ie.Code)
		} else {
			class = "imap:" + string(ie.Type)
		}
		switch {
		case ie.Type == imap.StatusResponseTypeBad:
			return class, false, true
		case ie.Code == imap.ResponseCodeAuthenticationFailed, ie.Code == imap.ResponseCodeAuthorizationFailed,
			ie.Code == imap.ResponseCodeNonExistent:
			return class, false, false
		case ie.Type == imap.StatusResponseTypeBye:
			return class, true, false
		}
		return class, true, true
	}
	if nc == nil {
		return netx.Classify(err), true, false
	}
	return nc.Class(err), true, false
}

// opFunc performs one attempt of an operation on a live session and fills
// in the record's facts (MsgID, UID, Flags, ...).
type opFunc func(ctx context.Context, s *session, rec *history.Record) error

// do runs fn under the client policy: it (re)connects as needed, arms the
// deadline, records every attempt and the op, and returns the op record.
func (cl *Client) do(ctx context.Context, kind history.Kind, stage string, timeout time.Duration, fn opFunc) (history.Record, error) {
	clock := cl.o.Recorder.Clock()
	stats := cl.o.Stats
	first := time.Now()
	var (
		n       int
		lastErr error
		last    history.Record
	)
	for {
		n++
		start := time.Now()
		rec := history.Record{Client: cl.name, Kind: kind, Scope: history.ScopeAttempt, Attempt: n, Stage: stage, Mailbox: cl.acct.Mailbox()}
		err := ctx.Err()
		if err == nil && cl.cur == nil {
			var s *session
			if s, err = cl.connect(ctx); err == nil {
				if n > 1 || lastErr != nil {
					stats.Reconnects.Add(1)
				}
				cl.cur = s
			}
		}
		var nc *netx.Conn
		if err == nil {
			nc = cl.cur.nc
			rec.UIDValidity = cl.cur.uidValidity
			nc.ArmFor(timeout)
			err = at(stage, fn(ctx, cl.cur, &rec))
		}
		rec.Start, rec.End = clock.At(start), clock.Now()
		stats.Attempts.Add(1)
		retryable, keep := true, false
		if err == nil {
			rec.Outcome = history.OK
			cl.cur.nc.ArmFor(cl.keep)
		} else {
			stats.AttemptFailures.Add(1)
			var oe *opError
			if errors.As(err, &oe) {
				rec.Stage = oe.stage
				if oe.nc != nil {
					nc = oe.nc
				}
			}
			rec.Outcome = history.Fail
			rec.Class, retryable, keep = classify(nc, err)
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				rec.Class = netx.Classify(ctx.Err())
			}
			rec.Detail = detail(err)
			if !keep || (cl.cur != nil && isClosed(cl.cur.c)) {
				cl.drop()
			}
		}
		_ = cl.o.Recorder.Op(rec)
		last, lastErr = rec, err
		if err == nil || !retryable || ctx.Err() != nil {
			break
		}
		wait, ok := cl.o.Policy.Next(n, first, time.Now(), cl.rng)
		if !ok || netx.Sleep(ctx, wait) != nil {
			break
		}
	}
	op := last
	op.Scope, op.Attempt = history.ScopeOp, n
	op.Start, op.End = clock.At(first), clock.Now()
	stats.Ops.Add(1)
	if lastErr != nil {
		stats.OpFailures.Add(1)
	}
	_ = cl.o.Recorder.Op(op)
	return op, lastErr
}

func isClosed(c *imapclient.Client) bool {
	select {
	case <-c.Closed():
		return true
	default:
		return false
	}
}

func detail(err error) string {
	d := err.Error()
	if len(d) > 300 {
		d = d[:300]
	}
	return d
}

// errBodyless is returned when a FETCH returns no usable body section.
var errBodyless = errors.New("fetch: no body section in the response")

// wrapf wraps err with what failed.
func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
