package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/imapload"
	"github.com/mailchaos/mailchaos/loadgen/netx"
	"github.com/mailchaos/mailchaos/loadgen/retry"
	"github.com/mailchaos/mailchaos/loadgen/smtpload"
)

// Bounds of the protocol checks.
const (
	dialTimeout  = 5 * time.Second
	replyTimeout = 15 * time.Second
	localName    = "doctor.mailchaos.test"
)

// policy is the client policy of the doctor's sends and reads: a few quick
// retries, so that a stack that answers at the second try passes and one
// that does not answer fails within seconds.
var policy = retry.Policy{MaxAttempts: 3, Budget: 10 * time.Second, BaseBackoff: 500 * time.Millisecond, MaxBackoff: 2 * time.Second}

// greetings checks that each client endpoint greets as its protocol does:
// 220 for SMTP and submission, "* OK" for IMAP.
func (c *checker) greetings(ctx context.Context) {
	for _, ep := range []struct{ name, check string }{
		{"smtp", CheckSMTPGreeting},
		{"submission", CheckSubmissionGreeting},
		{"imap", CheckIMAPGreeting},
	} {
		addr, via := c.endpoint(ep.name)
		if addr == "" {
			fix := fmt.Sprintf("add endpoints.%s to the descriptor: the link clients reach %s through", ep.name, ep.name)
			if ep.name == "submission" {
				c.warn(ep.check, "", fix, "no submission endpoint: the load sends on port 25 only, and submit-and-read uses it instead")
			} else {
				c.fail(ep.check, "", fix, "the descriptor declares no %s endpoint", ep.name)
			}
			continue
		}
		var line string
		var err error
		bounded(ctx, replyTimeout, func(ctx context.Context) {
			if ep.name == "imap" {
				line, err = imapGreeting(ctx, addr)
			} else {
				line, err = smtpGreeting(ctx, addr)
			}
		})
		if err != nil {
			c.fail(ep.check, "", fmt.Sprintf("make the %s endpoint's link reach a server that greets first (the edge, or the service clients use)", ep.name),
				"%s: %v", via, err)
			continue
		}
		c.ok(ep.check, "", "%s: %s", via, line)
	}
}

// smtpGreeting reads an SMTP server's greeting and wants 220.
func smtpGreeting(ctx context.Context, addr string) (string, error) {
	conn, err := netx.Dial(ctx, addr, dialTimeout, replyTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	code, msg, err := textproto.NewReader(bufio.NewReader(io.LimitReader(conn, 64<<10))).ReadResponse(220)
	switch {
	case err != nil && code != 0:
		return "", fmt.Errorf("greeting %d %s, want 220", code, firstLine(msg))
	case err != nil:
		return "", fmt.Errorf("no SMTP greeting: %w", err)
	}
	return fmt.Sprintf("%d %s", code, firstLine(msg)), nil
}

// imapGreeting reads an IMAP server's greeting and wants "* OK".
func imapGreeting(ctx context.Context, addr string) (string, error) {
	conn, err := netx.Dial(ctx, addr, dialTimeout, replyTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	line, err := bufio.NewReader(io.LimitReader(conn, 64<<10)).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if err != nil && line == "" {
		return "", fmt.Errorf("no IMAP greeting: %w", err)
	}
	if !strings.HasPrefix(strings.ToUpper(line), "* OK") {
		return "", fmt.Errorf("greeting %q, want \"* OK ...\"", line)
	}
	return line, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// smtpSession opens an SMTP session at addr (greeting and EHLO done), with
// every wait bounded.
func smtpSession(ctx context.Context, addr string) (*smtp.Client, *netx.Conn, error) {
	conn, err := netx.Dial(ctx, addr, dialTimeout, 2*replyTimeout)
	if err != nil {
		return nil, nil, err
	}
	cl := smtp.NewClient(conn)
	cl.CommandTimeout = replyTimeout
	if err := cl.Hello(localName); err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("greeting or EHLO: %w", err)
	}
	return cl, conn, nil
}

// authNeedsTLS tries AUTH PLAIN with a real user's password before
// STARTTLS: the submission service must refuse it, or every client that
// skips STARTTLS sends its password in clear.
func (c *checker) authNeedsTLS(ctx context.Context) {
	addr, via := c.endpoint("submission")
	if addr == "" {
		return // reported by submission-greeting
	}
	users := c.env.Users()
	if len(users) == 0 {
		c.fail(CheckAuthNeedsTLS, "", "give the descriptor users (users.count > 0)", "the stack has no test users to log in with")
		return
	}
	u := users[0]
	const fix = "refuse AUTH until STARTTLS on the submission service (e.g. Postfix: smtpd_tls_auth_only = yes, or smtpd_tls_security_level = encrypt)"
	bounded(ctx, 2*replyTimeout, func(ctx context.Context) {
		cl, conn, err := smtpSession(ctx, addr)
		if err != nil {
			c.fail(CheckAuthNeedsTLS, "", "make the submission endpoint answer EHLO", "%s: %v", via, err)
			return
		}
		defer conn.Close()
		defer cl.Close()
		advertised, _ := cl.Extension("AUTH")
		err = cl.Auth(sasl.NewPlainClient("", u.Address, u.Password))
		var se *smtp.SMTPError
		switch {
		case err == nil:
			c.fail(CheckAuthNeedsTLS, "", fix, "%s accepted AUTH PLAIN for %s without TLS: the password crossed the network in clear", via, u.Address)
		case errors.As(err, &se):
			note := ""
			if advertised {
				note = " (it advertises AUTH before STARTTLS, though)"
			}
			c.ok(CheckAuthNeedsTLS, "", "%s refused AUTH before STARTTLS: %d %s%s", via, se.Code, se.Message, note)
		default:
			c.fail(CheckAuthNeedsTLS, "", "make the submission endpoint answer AUTH with an SMTP reply", "%s: no reply to AUTH before STARTTLS: %v", via, err)
		}
	})
}

// unknownRecipient sends RCPT TO an address no user has: the stack must
// answer 5xx there. A stack that accepts it bounces or drops the message
// later, after the client was told it was accepted.
func (c *checker) unknownRecipient(ctx context.Context) {
	addr, via := c.endpoint("smtp")
	if addr == "" {
		return // reported by smtp-greeting
	}
	users := c.env.Users()
	if len(users) == 0 {
		c.fail(CheckUnknownRecipient, "", "give the descriptor users (users.count > 0)", "the stack has no test users to send from")
		return
	}
	nobody := "doctor-nobody-" + c.env.RunID() + "@" + c.env.Descriptor().Users.Domain
	const fix = "refuse unknown recipients at RCPT time with a 5xx (e.g. Postfix: a virtual_mailbox_maps or local_recipient_maps that lists the users)"
	bounded(ctx, 2*replyTimeout, func(ctx context.Context) {
		cl, conn, err := smtpSession(ctx, addr)
		if err != nil {
			c.fail(CheckUnknownRecipient, "", "make the smtp endpoint answer EHLO", "%s: %v", via, err)
			return
		}
		defer conn.Close()
		defer cl.Close()
		if err := cl.Mail(users[0].Address, nil); err != nil {
			c.fail(CheckUnknownRecipient, "", "accept MAIL FROM a test user on the smtp endpoint", "%s: MAIL FROM:<%s>: %v", via, users[0].Address, err)
			return
		}
		err = cl.Rcpt(nobody, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			c.fail(CheckUnknownRecipient, "", fix, "%s accepted RCPT TO:<%s>, a user that does not exist: its mail would be bounced or dropped after acceptance", via, nobody)
		case errors.As(err, &se) && se.Code/100 == 5:
			c.ok(CheckUnknownRecipient, "", "%s refused RCPT TO:<%s>: %d %s", via, nobody, se.Code, se.Message)
		case errors.As(err, &se):
			c.fail(CheckUnknownRecipient, "", fix, "%s answered RCPT TO:<%s> with %d %s: a temporary refusal, which clients retry for ever", via, nobody, se.Code, se.Message)
		default:
			c.fail(CheckUnknownRecipient, "", "make the smtp endpoint answer RCPT with an SMTP reply", "%s: RCPT TO:<%s>: %v", via, nobody, err)
		}
	})
}

// submitAndRead submits one message through the submission endpoint
// (STARTTLS verified against the run's CA, AUTH PLAIN) with the load
// generator's sender, and reads the recipient's INBOX with the final-read
// client until the message is there, byte-identical, or DeliveryBound
// passes.
func (c *checker) submitAndRead(ctx context.Context) {
	users := c.env.Users()
	imapAddr, _ := c.endpoint("imap")
	if len(users) == 0 || imapAddr == "" {
		c.fail(CheckSubmitAndRead, "", "give the descriptor users and an imap endpoint", "nothing to send as or read with (users: %d, imap endpoint: %q)", len(users), imapAddr)
		return
	}
	u := users[0]
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.env.CACertPEM()) {
		c.fail(CheckSubmitAndRead, "", "this is a harness bug: report it", "the run's CA certificate does not parse")
		return
	}
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	ep := smtpload.Endpoint{Submission: true, TLS: tlsCfg}
	how := "submission (STARTTLS, AUTH PLAIN)"
	var via string
	if ep.Addr, via = c.endpoint("submission"); ep.Addr == "" {
		ep = smtpload.Endpoint{}
		if ep.Addr, via = c.endpoint("smtp"); ep.Addr == "" {
			c.fail(CheckSubmitAndRead, "", "declare an smtp or submission endpoint", "no endpoint to send through")
			return
		}
		how = "smtp (port 25 style)"
	}
	rec := newMemRecorder()
	gen, err := corpus.New(corpus.Options{RunID: c.env.RunID() + "-doctor", Recipients: []string{u.Address}, MaxRecipients: 1,
		MedianSize: 2 << 10, Sigma: -1, Weights: [3]float64{1, 0, 0}})
	if err != nil {
		c.fail(CheckSubmitAndRead, "", "this is a harness bug: report it", "build the message: %v", err)
		return
	}
	sender := smtpload.NewSender(smtpload.SenderConfig{Name: "doctor", Endpoint: ep, User: smtpload.User{Address: u.Address, Password: u.Password},
		Corpus: gen, Policy: policy, Timeouts: smtpload.Timeouts{Dial: dialTimeout, Command: replyTimeout, Data: replyTimeout},
		LocalName: localName, Recorder: rec})
	sent := time.Now()
	var res smtpload.Result
	bounded(ctx, policy.Budget+2*replyTimeout, func(ctx context.Context) { res = sender.Send(ctx, "doctor", 1) })
	sender.Close()
	if res.Outcome != history.OK {
		c.fail(CheckSubmitAndRead, "", "the submission endpoint must accept a test user's message after STARTTLS (verified against the run's CA) and AUTH PLAIN: see the MTA's log in the run's logs/ folder",
			"%s via %s did not accept the message after %d attempt(s): %s at %s: %v", how, via, res.Attempts, res.Class, res.Stage, res.Err)
		return
	}
	want := rec.bodyHash(res.MsgID)
	opts := imapload.Options{Addr: imapAddr, TLS: tlsCfg, Timeouts: imapload.Timeouts{Dial: dialTimeout, Command: replyTimeout}, Policy: policy, Recorder: rec}
	acct := imapload.Account{Address: u.Address, Password: u.Password}
	var found *history.Record
	var lastErr error
	bounded(ctx, c.o.DeliveryBound, func(ctx context.Context) {
		for round := 1; ; round++ {
			_, lastErr = imapload.FinalRead(ctx, opts, []imapload.Account{acct}, imapload.FinalReadConfig{Round: round, Concurrency: 1})
			if found = rec.final(res.MsgID); found != nil || netx.Sleep(ctx, time.Second) != nil {
				return
			}
		}
	})
	took := time.Since(sent).Round(100 * time.Millisecond)
	switch {
	case found == nil && lastErr != nil:
		c.fail(CheckSubmitAndRead, "", "clients must be able to log in over IMAP with STARTTLS (verified against the run's CA) and read their INBOX",
			"accepted by %s, but %s's INBOX could not be read over IMAP within %s: %v", how, u.Address, c.o.DeliveryBound, lastErr)
	case found == nil:
		c.fail(CheckSubmitAndRead, "", "deliver accepted mail to the store within seconds: see the MTA's and store's logs in the run's logs/ folder",
			"accepted by %s, but not in %s's INBOX after %s", how, u.Address, c.o.DeliveryBound)
	case want != "" && found.BodySHA256 != want:
		c.fail(CheckSubmitAndRead, "", "deliver messages unchanged: look for content filters or rewrites between MTA and store",
			"read back after %s, but its body changed (sha256 %.12s..., sent %.12s...)", took, found.BodySHA256, want)
	default:
		c.ok(CheckSubmitAndRead, "", "sent by %s via %s as %s, read back byte-identical over IMAP (STARTTLS) after %s (UID %d)", how, via, u.Address, took, found.UID)
	}
}

// memRecorder keeps what the doctor's clients record, in memory: they want
// a recorder, and the doctor only needs the send's body hash and the final
// read's records. It is safe for concurrent use.
type memRecorder struct {
	clock history.Clock
	mu    sync.Mutex
	sent  map[string]string // message ID -> body hash
	found map[string]history.Record
}

var (
	_ smtpload.Recorder = (*memRecorder)(nil)
	_ imapload.Recorder = (*memRecorder)(nil)
)

func newMemRecorder() *memRecorder {
	return &memRecorder{clock: history.NewClock(), sent: map[string]string{}, found: map[string]history.Record{}}
}

func (m *memRecorder) Clock() history.Clock { return m.clock }

// Op keeps the body hash of every send.
func (m *memRecorder) Op(r history.Record) error {
	if r.Kind == history.KindSMTPSend && r.BodySHA256 != "" {
		m.mu.Lock()
		m.sent[r.MsgID] = r.BodySHA256
		m.mu.Unlock()
	}
	return nil
}

func (m *memRecorder) Seen(history.Record) error { return nil }

// Final keeps the final read's records by message ID.
func (m *memRecorder) Final(r history.Record) error {
	if r.MsgID != "" {
		m.mu.Lock()
		m.found[r.MsgID] = r
		m.mu.Unlock()
	}
	return nil
}

func (m *memRecorder) PhaseOn(history.Phase, string, int, string) error { return nil }

func (m *memRecorder) bodyHash(msgID string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent[msgID]
}

func (m *memRecorder) final(msgID string) *history.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.found[msgID]; ok {
		return &r
	}
	return nil
}
