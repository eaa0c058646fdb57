package harness

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const eximCyrusStack = "../fixtures/stacks/exim-cyrus/stack.yaml"

// TestEximCyrusStack brings the second stack (Exim + Cyrus IMAP, one region,
// no edge) up and checks the client contract the reference keeps: mail for a
// user from anyone on 25; submission on 587 only after STARTTLS and AUTH;
// unknown recipients refused with 5xx; both messages read back over IMAP
// (STARTTLS, login with the address) byte-identical; then, with the store
// killed, mail is accepted and queued, the MTA is killed with it in its
// queue, and once both are back it is delivered, while the earlier messages,
// their UIDVALIDITY and a \Seen flag survived the store's kill.
func TestEximCyrusStack(t *testing.T) {
	ctx, env, runID := upForTest(t, eximCyrusStack, 4*time.Minute)

	endpoint := func(name string) string {
		t.Helper()
		addr, err := env.Endpoint(name)
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}
	smtpAddr, subAddr, imapAddr := endpoint("smtp"), endpoint("submission"), endpoint("imap")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(env.CACertPEM()) {
		t.Fatal("the run's CA certificate does not parse")
	}
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	users := env.Users()
	to, sender := users[0], users[1]
	body := "Hello from the exim-cyrus acceptance test.\r\nRun " + runID + ".\r\n"

	// Port 25: mail for a user of the domain from anyone.
	inbound := runID + ".exim.1"
	if err := sendMail(smtpAddr, "someone@elsewhere.test", to.Address, inbound, body); err != nil {
		t.Fatalf("send on port 25: %v", err)
	}
	// Port 587: STARTTLS, AUTH PLAIN, then the message.
	submitted := runID + ".exim.2"
	if err := submitMail(subAddr, tlsCfg, sender, to.Address, submitted, body); err != nil {
		t.Fatalf("submit on port 587: %v", err)
	}
	for _, id := range []string{inbound, submitted} {
		took, err := poll(ctx, 60*time.Second, func() error {
			m, err := readMail(imapAddr, tlsCfg, to, id, false)
			if err != nil {
				return err
			}
			if m.body != body {
				return fmt.Errorf("body %q, want %q", m.body, body)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("read %s over IMAP: %v", id, err)
		}
		t.Logf("%s delivered and read over IMAP after %s", id, took.Round(time.Millisecond))
	}

	// What the MTA must refuse.
	if code, err := rcptCode(smtpAddr, nil, nil, "nobody@"+env.Descriptor().Users.Domain); err != nil || code/100 != 5 {
		t.Errorf("unknown recipient on port 25: reply %d (%v), want 5xx", code, err)
	}
	if code, err := rcptCode(smtpAddr, nil, nil, "someone@elsewhere.test"); err != nil || code/100 != 5 {
		t.Errorf("relay to another domain on port 25: reply %d (%v), want 5xx", code, err)
	}
	if code, err := authWithoutTLS(subAddr, sender); err != nil || code/100 != 5 {
		t.Errorf("AUTH before STARTTLS on port 587: reply %d (%v), want 5xx", code, err)
	}
	if code, err := rcptCode(subAddr, tlsCfg, nil, to.Address); err != nil || code/100 != 5 {
		t.Errorf("MAIL without AUTH on port 587 (after STARTTLS): reply %d (%v), want 5xx", code, err)
	}
	if code, err := rcptCode(subAddr, tlsCfg, &sender, "nobody@"+env.Descriptor().Users.Domain); err != nil || code/100 != 5 {
		t.Errorf("unknown recipient on port 587 (authenticated): reply %d (%v), want 5xx", code, err)
	}

	mta, err := env.Node("smtp1")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := mta.Quiesced(ctx); err != nil || !ok {
		t.Errorf("smtp1 not quiesced with both messages delivered: %v, %v", ok, err)
	}

	// \Seen on the first message, then the store is killed: the message,
	// its flag and the mailbox's UIDVALIDITY must survive.
	before, err := readMail(imapAddr, tlsCfg, to, inbound, true)
	if err != nil {
		t.Fatalf("set \\Seen: %v", err)
	}
	store, err := env.Node("imap1")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	// Accepted while the store is away: queued on the MTA's volume, which
	// outlives the MTA's own kill.
	queued := runID + ".exim.3"
	if err := sendMail(smtpAddr, "someone@elsewhere.test", to.Address, queued, body); err != nil {
		t.Fatalf("send with the store down: %v", err)
	}
	if ok, err := mta.Quiesced(ctx); err != nil || ok {
		t.Errorf("smtp1 quiesced with a message for a dead store: %v, %v (want a non-empty queue)", ok, err)
	}
	if err := mta.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mta.Start(ctx); err != nil {
		t.Fatalf("start smtp1: %v", err)
	}
	restart := time.Now()
	if err := store.Start(ctx); err != nil {
		t.Fatalf("start imap1: %v", err)
	}
	t.Logf("imap1 ready %s after its start", time.Since(restart).Round(time.Millisecond))
	took, err := poll(ctx, 30*time.Second, func() error {
		_, err := readMail(imapAddr, tlsCfg, to, queued, false)
		return err
	})
	if err != nil {
		t.Fatalf("the message queued while the store was down: %v", err)
	}
	t.Logf("queued message delivered %s after the store was ready", took.Round(time.Millisecond))
	after, err := readMail(imapAddr, tlsCfg, to, inbound, false)
	if err != nil {
		t.Fatalf("after the store's kill: %v", err)
	}
	if after.body != body || after.uidValidity != before.uidValidity || after.uid != before.uid || !after.seen {
		t.Errorf("after the store's kill: uidvalidity %d uid %d seen %v body ok %v; before: uidvalidity %d uid %d",
			after.uidValidity, after.uid, after.seen, after.body == body, before.uidValidity, before.uid)
	}
	if m, err := readMail(imapAddr, tlsCfg, to, submitted, false); err != nil || m.body != body {
		t.Errorf("submitted message after the store's kill: %v", err)
	}
	if _, err := poll(ctx, 20*time.Second, func() error {
		if ok, err := mta.Quiesced(ctx); err != nil || !ok {
			return fmt.Errorf("queue not empty (%v)", err)
		}
		return nil
	}); err != nil {
		t.Errorf("smtp1 after delivering the queued message: %v", err)
	}
}

// submitMail sends one message through addr the submission way: EHLO,
// STARTTLS, AUTH PLAIN as u, then the message from u to rcpt.
func submitMail(addr string, cfg *tls.Config, u User, rcpt, id, body string) error {
	c, conn, err := dialSMTP(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := c.StartTLS(cfg); err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	if err := c.Auth(smtp.PlainAuth("", u.Address, u.Password, "localhost")); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	if err := c.Mail(u.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	sum := sha256.Sum256([]byte(body))
	msg := "From: " + u.Address + "\r\nTo: " + rcpt + "\r\nSubject: exim-cyrus submission\r\n" +
		"Message-ID: <" + id + "@harness.example.test>\r\n" +
		"X-Mailchaos-Id: " + id + "\r\nX-Mailchaos-Body-Sha256: " + hex.EncodeToString(sum[:]) + "\r\n\r\n" + body
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("DATA body: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

// dialSMTP opens a deadline-bound SMTP session to addr (greeting read,
// named localhost so that net/smtp's PLAIN goes ahead and the server is
// the one to refuse).
func dialSMTP(addr string) (*smtp.Client, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("greeting: %w", err)
	}
	if err := c.Hello("harness-test.example.test"); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("EHLO: %w", err)
	}
	return c, conn, nil
}

// rcptCode opens a session to addr (STARTTLS when cfg is set, AUTH when u
// is), gives MAIL FROM and RCPT TO rcpt, and returns the first refusal's
// reply code, or 250 when both were accepted.
func rcptCode(addr string, cfg *tls.Config, u *User, rcpt string) (int, error) {
	c, conn, err := dialSMTP(addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if cfg != nil {
		if err := c.StartTLS(cfg); err != nil {
			return 0, fmt.Errorf("STARTTLS: %w", err)
		}
	}
	from := "someone@elsewhere.test"
	if u != nil {
		if err := c.Auth(smtp.PlainAuth("", u.Address, u.Password, "localhost")); err != nil {
			return 0, fmt.Errorf("AUTH: %w", err)
		}
		from = u.Address
	}
	err = c.Mail(from)
	if err == nil {
		err = c.Rcpt(rcpt)
	}
	if err == nil {
		_ = c.Quit()
		return 250, nil
	}
	return replyCode(err)
}

// authWithoutTLS tries AUTH PLAIN on a plain session and returns the reply code.
func authWithoutTLS(addr string, u User) (int, error) {
	c, conn, err := dialSMTP(addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		return 0, errors.New("AUTH is offered before STARTTLS")
	}
	err = c.Auth(smtp.PlainAuth("", u.Address, u.Password, "localhost"))
	if err == nil {
		return 235, nil
	}
	return replyCode(err)
}

func replyCode(err error) (int, error) {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, nil
	}
	return 0, err
}

// imapMessage is what readMail found of one message.
type imapMessage struct {
	body        string
	uid         imap.UID
	uidValidity uint32
	seen        bool
}

// readMail logs in at addr over STARTTLS with the user's address, finds the
// one INBOX message with X-Mailchaos-Id id and returns its BODY[TEXT], UID,
// the mailbox's UIDVALIDITY and whether it is \Seen; with markSeen it sets
// \Seen first. Bounded by a deadline.
func readMail(addr string, cfg *tls.Config, u User, id string, markSeen bool) (imapMessage, error) {
	var m imapMessage
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return m, err
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		conn.Close()
		return m, fmt.Errorf("STARTTLS: %w", err)
	}
	defer c.Close()
	if err := c.Login(u.Address, u.Password).Wait(); err != nil {
		return m, fmt.Errorf("LOGIN: %w", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return m, fmt.Errorf("SELECT: %w", err)
	}
	m.uidValidity = sel.UIDValidity
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Mailchaos-Id", Value: id}}}, nil).Wait()
	if err != nil {
		return m, fmt.Errorf("SEARCH: %w", err)
	}
	uids := data.AllUIDs()
	if len(uids) != 1 {
		return m, fmt.Errorf("%d messages with X-Mailchaos-Id %s", len(uids), id)
	}
	m.uid = uids[0]
	set := imap.UIDSetNum(uids...)
	if markSeen {
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
			return m, fmt.Errorf("STORE +FLAGS \\Seen: %w", err)
		}
	}
	msgs, err := c.Fetch(set, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText, Peek: true}}}).Collect()
	if err != nil {
		return m, fmt.Errorf("FETCH: %w", err)
	}
	if len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		return m, fmt.Errorf("FETCH returned %d messages", len(msgs))
	}
	m.body = string(msgs[0].BodySection[0].Bytes)
	m.seen = slices.Contains(msgs[0].Flags, imap.FlagSeen)
	_ = c.Logout().Wait()
	return m, nil
}
