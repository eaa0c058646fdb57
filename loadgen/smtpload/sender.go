// Package smtpload sends the corpus over SMTP the way a real MTA or mail
// client does, and records every attempt and every logical send in the
// history.
//
// A Sender is one SMTP client: one connection at a time, several messages per
// session, reconnecting when the session breaks. Port 25 is plain SMTP;
// submission (587) is STARTTLS (trusting the run's CA) then AUTH PLAIN.
//
// # Client policy
//
// Each message is one logical operation (history scope "op") made of one or
// more attempts (scope "attempt"), all under one X-Mailchaos-Id:
//
//   - 2xx to the final "." of DATA: accepted (ok). Only then is the message owed.
//   - 4xx at any stage, or a connection lost, reset, refused or timed out
//     before the final "." was written: fail, retried with backoff within
//     the retry budget (see package retry).
//   - 5xx at any stage: permanent failure, not retried.
//   - Connection lost or timed out after the final "." and before its reply:
//     indeterminate. The message may exist. It is retried within the budget
//     with the same message ID, so a duplicate is recognisably a recovery.
//
// The op's outcome is ok if any attempt was accepted, else indeterminate if
// any attempt was, else fail.
//
// # Deadlines
//
// go-smtp takes no context and clears its deadlines after each command, so
// the Sender dials the connection itself (package netx): every command, the
// body write and the wait for the final reply have a hard deadline that the
// library cannot lift, and a watchdog closes a connection that outlives it or
// whose context ends.
//
// # Models
//
// RunOpen is the open model (arrival rate, constant or ramping): a tick that
// finds no idle sender is counted as dropped, never queued. RunClosed is the
// closed model: N senders each sending back to back. Both stop by count and by
// time on their own.
package smtpload

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/netx"
	"github.com/mailchaos/mailchaos/loadgen/retry"
)

// Stages of an SMTP attempt, as recorded in history.Record.Stage.
const (
	StageConnect  = "connect"
	StageGreeting = "greeting"
	StageTLS      = "tls"
	StageAuth     = "auth"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data"
	StageDataEnd  = "data-end"
)

// Recorder receives the operation records. *history.Writer implements it.
type Recorder interface {
	Op(r history.Record) error
	Clock() history.Clock
}

var _ Recorder = (*history.Writer)(nil)

// Endpoint is where and how a Sender connects.
type Endpoint struct {
	Addr string // host:port
	// Submission selects STARTTLS and AUTH PLAIN (port 587 style).
	Submission bool
	// TLS is the configuration for STARTTLS (RootCAs holding the run's CA).
	// Required when Submission is set.
	TLS *tls.Config
}

// User is a test user: the envelope sender and, on submission, the login.
type User struct {
	Address, Password string
}

// Timeouts bound every wait of a session.
type Timeouts struct {
	Dial    time.Duration // TCP connect (default 5s)
	Command time.Duration // each command's reply, greeting and TLS handshake included (default 30s)
	// Data bounds writing the body and waiting for the reply to the final
	// "." (default 60s); bodies get one more second per MiB.
	Data time.Duration
}

// WithDefaults returns t with zero fields set to their defaults.
func (t Timeouts) WithDefaults() Timeouts {
	if t.Dial == 0 {
		t.Dial = 5 * time.Second
	}
	if t.Command == 0 {
		t.Command = 30 * time.Second
	}
	if t.Data == 0 {
		t.Data = 60 * time.Second
	}
	return t
}

// SenderConfig configures one Sender.
type SenderConfig struct {
	Name      string // history client name, e.g. "smtp-3"
	Endpoint  Endpoint
	User      User
	Corpus    *corpus.Generator
	Policy    retry.Policy
	Timeouts  Timeouts
	LocalName string // EHLO name (default "loadgen.mailchaos.test")
	// MsgsPerSession is how many messages a session carries before QUIT
	// (default 10).
	MsgsPerSession int
	// SessionIdle closes a session that would otherwise sit idle longer
	// than this until its next message (default 2s, Postfix's
	// smtp_connection_cache_time_limit). A client that holds idle sessions
	// open for ever keeps a load balancer's drain from ever finishing.
	SessionIdle time.Duration
	Recorder    Recorder
	Stats       *Stats // may be shared by many senders; nil: private
	Seed        int64  // jitter source
}

// Sender is one SMTP client. It is not safe for concurrent use: run one
// goroutine per Sender.
type Sender struct {
	cfg  SenderConfig
	rng  *rand.Rand
	sess *session
}

type session struct {
	conn     *netx.Conn
	hold     *holdConn // the plain session's connection as go-smtp sees it; nil under TLS
	c        *smtp.Client
	eightBit bool
	// pipelining: the server offers PIPELINING and the session is plain:
	// RCPT and DATA are sent with MAIL.
	pipelining bool
	sent       int
	cmds       []byte // storage of the pipelined commands
	lines      [][]byte
}

// commands returns the RCPT and DATA lines for rcpt exactly as go-smtp
// writes them (no RCPT parameters).
func (ss *session) commands(rcpt []string) [][]byte {
	ss.cmds, ss.lines = ss.cmds[:0], ss.lines[:0]
	for _, r := range rcpt {
		ss.cmds = append(ss.cmds, "RCPT TO:<"...)
		ss.cmds = append(ss.cmds, r...)
		ss.cmds = append(ss.cmds, ">\r\n"...)
	}
	ss.cmds = append(ss.cmds, "DATA\r\n"...)
	rest := ss.cmds
	for _, r := range rcpt {
		n := len("RCPT TO:<>\r\n") + len(r)
		ss.lines = append(ss.lines, rest[:n:n])
		rest = rest[n:]
	}
	return append(ss.lines, rest)
}

// holdConn is a plain session's connection as go-smtp sees it. While it
// holds, writes are collected and leave together just before the next read
// (go-smtp always reads a reply after writing a command or the final "."):
// a message's body and its final "." cost one system call, and the body is
// held by reference and written with writev, never copied on its way to the
// kernel. It remembers a failed write, so that a connection lost while the
// final "." was being written is told apart from one lost after it.
//
// It also pipelines (RFC 2920) when the server offers PIPELINING: the RCPT
// and DATA commands go out in the same write as MAIL, and when go-smtp then
// writes them, the identical bytes are not sent again. go-smtp still reads
// every reply in order, so each command's reply is its own; while commands
// sent ahead remain (a MAIL or RCPT refused), the session cannot be RSET
// and is dropped instead.
type holdConn struct {
	*netx.Conn
	holding bool
	body    []byte    // held by reference (hold): the stuffed message
	buf     []byte    // held by copy: commands, the final "."
	vec     [2][]byte // the body and buf, for one writev
	werr    error     // the first write error since the last DATA began
	next    [][]byte  // commands to send with the held bytes
	ahead   [][]byte  // commands sent that go-smtp has yet to write
}

// errPipeline is what go-smtp gets if it writes a command other than the
// one pipelined ahead of it (a bug: the session is dropped).
var errPipeline = errors.New("smtp client wrote a command other than the one pipelined")

// pipeline makes the next MAIL command go out with the commands cmds, each
// a whole line with its CRLF. (go-smtp may write an EHLO first.)
func (h *holdConn) pipeline(cmds [][]byte) {
	h.next = cmds
}

var mailCmd = []byte("MAIL FROM:")

// hold starts holding writes, with body as their first bytes. body is not
// copied: it must stay unchanged until the next read has sent it.
func (h *holdConn) hold(body []byte) {
	h.holding = true
	h.body = body
	h.buf = h.buf[:0]
}

// Write holds b while holding, skips it if it was sent ahead, else writes it.
func (h *holdConn) Write(b []byte) (int, error) {
	if h.holding {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	if h.next != nil && bytes.HasPrefix(b, mailCmd) {
		h.hold(nil)
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	if len(h.ahead) > 0 {
		if !bytes.Equal(b, h.ahead[0]) {
			h.ahead = nil
			return 0, errPipeline
		}
		h.ahead = h.ahead[1:]
		return len(b), nil
	}
	n, err := h.Conn.Write(b)
	if err != nil && h.werr == nil {
		h.werr = err
	}
	return n, err
}

// Read sends what is held, then reads.
func (h *holdConn) Read(b []byte) (int, error) {
	if h.holding {
		h.holding = false
		for _, c := range h.next {
			h.buf = append(h.buf, c...)
		}
		h.ahead, h.next = h.next, nil
		var err error
		if h.body != nil {
			h.vec = [2][]byte{h.body, h.buf}
			iov := net.Buffers(h.vec[:])
			_, err = h.Conn.WriteBuffers(&iov)
			h.body, h.vec = nil, [2][]byte{}
		} else {
			_, err = h.Conn.Write(h.buf)
		}
		h.buf = h.buf[:0]
		if err != nil {
			if h.werr == nil {
				h.werr = err
			}
			return 0, err
		}
	}
	return h.Conn.Read(b)
}

// wire returns msg as it goes on the wire between DATA and the final ".":
// lines starting with "." get one more (RFC 5321 4.5.2). Generated messages
// use CRLF only, so this is the whole DATA dot-encoding, done once per
// message and reused by its retries; most messages have no such line and
// are returned as they are. It returns nil for a message the dot-encoder
// must handle itself: one with a bare LF, or not ending with CRLF.
func wire(msg []byte) []byte {
	if !bytes.HasSuffix(msg, crlf) {
		return nil
	}
	// One pass over the line ends: each must be a CRLF, and one followed
	// by "." starts a line that needs stuffing.
	stuff := msg[0] == '.'
	for i := 0; ; {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || msg[i-1] != '\r' {
			return nil
		}
		i++
		stuff = stuff || i < len(msg) && msg[i] == '.'
	}
	if !stuff {
		return msg
	}
	out := make([]byte, 0, len(msg)+64)
	if msg[0] == '.' {
		out = append(out, '.')
	}
	for {
		i := bytes.Index(msg, crlfDot)
		if i < 0 {
			return append(out, msg...)
		}
		out = append(out, msg[:i+2]...)
		out = append(out, '.')
		msg = msg[i+2:] // starts with the line's own "."
	}
}

var (
	crlf    = []byte("\r\n")
	crlfDot = []byte("\r\n.")
)

// NewSender returns a Sender; it connects lazily.
func NewSender(cfg SenderConfig) *Sender {
	cfg.Timeouts = cfg.Timeouts.WithDefaults()
	cfg.Policy = cfg.Policy.WithDefaults()
	if cfg.LocalName == "" {
		cfg.LocalName = "loadgen.mailchaos.test"
	}
	if cfg.MsgsPerSession <= 0 {
		cfg.MsgsPerSession = 10
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 2 * time.Second
	}
	if cfg.Stats == nil {
		cfg.Stats = &Stats{}
	}
	return &Sender{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), hashName(cfg.Name)))}
}

func hashName(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Warm opens the sender's session if it has none, so that its first send
// does not pay for connecting, and reports whether a session is open. A
// failure is not recorded: it has no message, and the next Send connects
// again and records what happens then.
func (s *Sender) Warm(ctx context.Context) bool {
	if s.sess == nil && ctx.Err() == nil {
		s.sess, _ = s.connect(ctx)
	}
	return s.sess != nil
}

// Name returns the sender's client name.
func (s *Sender) Name() string { return s.cfg.Name }

// Result is the outcome of one logical send.
type Result struct {
	MsgID    string
	Outcome  history.Outcome
	Class    string
	Stage    string
	Attempts int
	Err      error // the last attempt's error, nil when accepted
}

// attempt is the result of one try.
type attempt struct {
	outcome history.Outcome
	class   string
	stage   string
	err     error
	retry   bool
}

// Send sends message seq of stream under the client policy and records
// every attempt and the op. The message is built at the first attempt (its
// transfer encoding follows the first session's 8BITMIME) and every retry
// sends the same bytes under the same ID.
func (s *Sender) Send(ctx context.Context, stream string, seq int) Result {
	clock := s.cfg.Recorder.Clock()
	first := time.Now()
	var (
		out      outgoing
		last     attempt
		n        int
		accepted bool
		indet    bool
	)
	msgID := corpus.MessageID(s.cfg.Corpus.Options().RunID, stream, seq)
	for {
		n++
		start := time.Now()
		last = s.try(ctx, stream, seq, &out)
		end := time.Now()
		rec := history.Record{
			Client: s.cfg.Name, Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, Attempt: n,
			Start: clock.At(start), End: clock.At(end),
			Outcome: last.outcome, Class: last.class, Stage: last.stage, MsgID: msgID,
		}
		if msg := out.msg; msg != nil {
			rec.Rcpt, rec.BodySHA256, rec.Size = msg.Rcpt, msg.BodySHA256, msg.Size()
		}
		if last.err != nil {
			rec.Detail = detail(last.err)
		}
		s.cfg.Stats.attempt(last.outcome)
		_ = s.cfg.Recorder.Op(rec)
		switch last.outcome {
		case history.OK:
			accepted = true
		case history.Indeterminate:
			indet = true
		}
		if accepted || !last.retry || ctx.Err() != nil {
			break
		}
		wait, ok := s.cfg.Policy.Next(n, first, time.Now(), s.rng)
		if !ok || netx.Sleep(ctx, wait) != nil {
			break
		}
	}
	res := history.Fail
	switch {
	case accepted:
		res = history.OK
	case indet:
		res = history.Indeterminate
	}
	rec := history.Record{
		Client: s.cfg.Name, Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: n,
		Start: clock.At(first), End: clock.Now(),
		Outcome: res, Class: last.class, Stage: last.stage, MsgID: msgID,
	}
	if msg := out.msg; msg != nil {
		rec.Rcpt, rec.BodySHA256, rec.Size = msg.Rcpt, msg.BodySHA256, msg.Size()
		s.cfg.Stats.Bytes.Add(int64(msg.Size()))
	}
	if res != history.OK && last.err != nil {
		rec.Detail = detail(last.err)
	}
	s.cfg.Stats.op(res)
	_ = s.cfg.Recorder.Op(rec)
	if out.msg != nil {
		// Every attempt is over and nothing holds the bytes any more.
		out.msg.Release()
	}
	return Result{MsgID: msgID, Outcome: res, Class: last.class, Stage: last.stage, Attempts: n, Err: last.err}
}

func detail(err error) string {
	d := err.Error()
	if len(d) > 300 {
		d = d[:300]
	}
	return d
}

// outgoing is the message of one logical send, built at its first attempt
// and reused by every retry.
type outgoing struct {
	msg  *corpus.Message
	wire []byte // msg.Bytes dot-stuffed; nil: let the dot-encoder do it
}

// try makes one attempt: connect if needed, then MAIL, RCPT, DATA.
func (s *Sender) try(ctx context.Context, stream string, seq int, out *outgoing) attempt {
	if err := ctx.Err(); err != nil {
		return attempt{outcome: history.Fail, class: netx.ClassCanceled, stage: StageConnect, err: err}
	}
	if s.sess == nil {
		sess, a := s.connect(ctx)
		if sess == nil {
			return a
		}
		s.sess = sess
	}
	ss := s.sess
	if out.msg == nil {
		m, err := s.cfg.Corpus.Message(stream, seq, s.cfg.User.Address, ss.eightBit)
		if err != nil {
			return attempt{outcome: history.Fail, class: netx.ClassError, stage: StageMail, err: err}
		}
		out.msg, out.wire = m, wire(m.Bytes)
	}
	m := out.msg
	to := s.cfg.Timeouts

	if ss.pipelining {
		ss.hold.pipeline(ss.commands(m.Rcpt))
	}
	// Each command has the command timeout; pipelined, MAIL, RCPT and DATA
	// leave in one write and their replies share it.
	ss.conn.ArmFor(to.Command)
	if err := ss.c.Mail(s.cfg.User.Address, &smtp.MailOptions{Size: int64(m.Size())}); err != nil {
		return s.failed(StageMail, err)
	}
	for _, r := range m.Rcpt {
		if !ss.pipelining {
			ss.conn.ArmFor(to.Command)
		}
		if err := ss.c.Rcpt(r, nil); err != nil {
			return s.failed(StageRcpt, err)
		}
	}
	if !ss.pipelining {
		ss.conn.ArmFor(to.Command)
	}
	wc, err := ss.c.Data()
	if err != nil {
		return s.failed(StageData, err)
	}
	ss.conn.ArmFor(to.Data + time.Duration(m.Size()>>20)*time.Second)
	var werr error
	if h := ss.hold; h != nil && out.wire != nil {
		// The stuffed message but its last CRLF, which the dot-writer's
		// close sends before the final "."; held and sent with it.
		h.werr = nil
		h.hold(out.wire[:len(out.wire)-2])
	} else {
		_, werr = wc.Write(m.Bytes)
	}
	if werr != nil {
		// The final "." was not written: the server cannot have the message.
		return s.failed(StageData, werr)
	}
	_, err = wc.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return s.failed(StageDataEnd, err)
		}
		if h := ss.hold; h != nil && h.werr != nil {
			// Lost while the final "." was being written: it never left
			// whole, so the server cannot have the message.
			return s.failed(StageData, h.werr)
		}
		// Lost between writing the final "." and reading its reply: the
		// server may have queued the message.
		s.drop()
		return attempt{outcome: history.Indeterminate, class: ss.conn.Class(err), stage: StageDataEnd, err: err, retry: true}
	}
	ss.sent++
	if ss.sent >= s.cfg.MsgsPerSession {
		s.Close()
	}
	return attempt{outcome: history.OK, class: "smtp:250", stage: StageDataEnd}
}

// connect opens a session: dial, greeting and EHLO, STARTTLS and AUTH on
// submission. On failure it returns a nil session and the failed attempt.
func (s *Sender) connect(ctx context.Context) (*session, attempt) {
	to := s.cfg.Timeouts
	ep := s.cfg.Endpoint
	conn, err := netx.Dial(ctx, ep.Addr, to.Dial, to.Command)
	if err != nil {
		return nil, attempt{outcome: history.Fail, class: netx.Classify(err), stage: StageConnect, err: err, retry: true}
	}
	fail := func(stage string, c *smtp.Client, err error) (*session, attempt) {
		a := classify(stage, conn, err)
		if c != nil {
			c.Close()
		}
		conn.Close()
		return nil, a
	}
	var (
		c    *smtp.Client
		hold *holdConn
	)
	if ep.Submission {
		conn.ArmFor(2 * to.Command)
		host, _, _ := net.SplitHostPort(ep.Addr)
		cfg := ep.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		c, err = smtp.NewClientStartTLS(conn, cfg)
		if err != nil {
			stage := StageTLS
			if conn.BytesWritten() == 0 {
				stage = StageGreeting // the greeting failed before EHLO was sent
			}
			return fail(stage, nil, err)
		}
		c.CommandTimeout, c.SubmissionTimeout = to.Command, to.Data
		conn.ArmFor(2 * to.Command)
		if err := c.Hello(s.cfg.LocalName); err != nil { // TLS handshake + EHLO
			return fail(StageTLS, c, err)
		}
		conn.ArmFor(to.Command)
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.User.Address, s.cfg.User.Password)); err != nil {
			return fail(StageAuth, c, err)
		}
	} else {
		hold = &holdConn{Conn: conn}
		c = smtp.NewClient(hold)
		c.CommandTimeout, c.SubmissionTimeout = to.Command, to.Data
		conn.ArmFor(2 * to.Command)
		if err := c.Hello(s.cfg.LocalName); err != nil {
			return fail(StageGreeting, c, err)
		}
	}
	ok, _ := c.Extension("8BITMIME")
	pipe, _ := c.Extension("PIPELINING")
	s.cfg.Stats.Sessions.Add(1)
	return &session{conn: conn, hold: hold, c: c, eightBit: ok, pipelining: pipe && hold != nil}, attempt{}
}

// failed classifies a failed step of a live session, and keeps the session
// if the server answered (RSET) or drops it if the connection is gone.
func (s *Sender) failed(stage string, err error) attempt {
	a := classify(stage, s.sess.conn, err)
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code != 421 && (s.sess.hold == nil || len(s.sess.hold.ahead) == 0) {
		s.sess.conn.ArmFor(s.cfg.Timeouts.Command)
		if s.sess.c.Reset() == nil {
			return a
		}
	}
	s.drop()
	return a
}

// classify turns an error at a stage into an attempt: SMTP replies by code,
// everything else by its network class. Only 5xx replies are final.
func classify(stage string, conn *netx.Conn, err error) attempt {
	a := attempt{outcome: history.Fail, stage: stage, err: err, retry: true}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		a.class = SMTPClass(se)
		a.retry = se.Code/100 != 5
		return a
	}
	a.class = conn.Class(err)
	return a
}

// SMTPClass returns the history class of an SMTP reply: "smtp:<code>" plus
// the enhanced code when the server sent one, e.g. "smtp:451 4.3.0".
func SMTPClass(se *smtp.SMTPError) string {
	ec := se.EnhancedCode
	if ec == smtp.NoEnhancedCode || ec == smtp.EnhancedCodeNotSet {
		return "smtp:" + strconv.Itoa(se.Code)
	}
	return fmt.Sprintf("smtp:%d %d.%d.%d", se.Code, ec[0], ec[1], ec[2])
}

// drop closes the session without QUIT.
func (s *Sender) drop() {
	if s.sess == nil {
		return
	}
	s.sess.c.Close()
	s.sess.conn.Close()
	s.sess = nil
}

// Idle tells the sender its next message is wait away: a session that
// would sit idle longer than SessionIdle is closed now, as an MTA's
// connection cache does.
func (s *Sender) Idle(wait time.Duration) {
	if wait > s.cfg.SessionIdle {
		s.Close()
	}
}

// Close ends the session politely (QUIT, bounded by the command timeout).
func (s *Sender) Close() {
	if s.sess == nil {
		return
	}
	s.sess.conn.ArmFor(s.cfg.Timeouts.Command)
	_ = s.sess.c.Quit()
	s.drop()
}

// Stats are counters shared by the senders of a run, safe for concurrent
// use; read them with Snapshot.
type Stats struct {
	Ticks, Dropped                       atomic.Int64 // open model
	Accepted, Failed, Indeterminate      atomic.Int64 // logical sends
	Attempts, AttemptErrors, AttemptsInd atomic.Int64
	Sessions, Bytes                      atomic.Int64
}

func (s *Stats) attempt(o history.Outcome) {
	s.Attempts.Add(1)
	switch o {
	case history.Fail:
		s.AttemptErrors.Add(1)
	case history.Indeterminate:
		s.AttemptsInd.Add(1)
	}
}

func (s *Stats) op(o history.Outcome) {
	switch o {
	case history.OK:
		s.Accepted.Add(1)
	case history.Fail:
		s.Failed.Add(1)
	default:
		s.Indeterminate.Add(1)
	}
}

// Snapshot is a copy of the counters at one instant.
type Snapshot struct {
	Ticks, Dropped                  int64 // open model: arrivals scheduled, arrivals that found no idle sender
	Accepted, Failed, Indeterminate int64 // logical sends by outcome
	Attempts, AttemptErrors         int64 // raw attempts, failed ones
	AttemptsIndeterminate           int64
	Sessions                        int64 // SMTP sessions opened
	Bytes                           int64 // bytes of the messages sent
}

// Sent returns the logical sends completed.
func (s Snapshot) Sent() int64 { return s.Accepted + s.Failed + s.Indeterminate }

// Snapshot returns the current counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Ticks: s.Ticks.Load(), Dropped: s.Dropped.Load(),
		Accepted: s.Accepted.Load(), Failed: s.Failed.Load(), Indeterminate: s.Indeterminate.Load(),
		Attempts: s.Attempts.Load(), AttemptErrors: s.AttemptErrors.Load(), AttemptsIndeterminate: s.AttemptsInd.Load(),
		Sessions: s.Sessions.Load(), Bytes: s.Bytes.Load(),
	}
}
