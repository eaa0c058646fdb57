package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const referenceStack = "../fixtures/stacks/reference/stack.yaml"

// sendMail submits one message through addr (SMTP, no auth) on a
// deadline-bound connection and returns its X-Mailchaos-Id.
func sendMail(addr, from, to, id, body string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c, err := smtp.NewClient(conn, "edge")
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := c.Hello("harness-test.example.test"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	sum := sha256.Sum256([]byte(body))
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: harness acceptance\r\n" +
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

// findMail logs in at addr (IMAP) and returns the body (BODY[TEXT]) of the
// message with X-Mailchaos-Id id in INBOX, or an error. Bounded by deadline.
func findMail(addr string, u User, id string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(u.Address, u.Password).Wait(); err != nil {
		return "", fmt.Errorf("LOGIN: %w", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return "", fmt.Errorf("SELECT: %w", err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Mailchaos-Id", Value: id}}}, nil).Wait()
	if err != nil {
		return "", fmt.Errorf("SEARCH: %w", err)
	}
	uids := data.AllUIDs()
	if len(uids) != 1 {
		return "", fmt.Errorf("%d messages with X-Mailchaos-Id %s", len(uids), id)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText, Peek: true}}}).Collect()
	if err != nil {
		return "", fmt.Errorf("FETCH: %w", err)
	}
	if len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		return "", fmt.Errorf("FETCH returned %d messages", len(msgs))
	}
	_ = c.Logout().Wait()
	return string(msgs[0].BodySection[0].Bytes), nil
}

// poll calls fn until it succeeds or the deadline passes.
func poll(ctx context.Context, within time.Duration, fn func() error) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		err := fn()
		if err == nil {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("not within %s: %w", within, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// TestReferenceStack is acceptance 1: the reference stack up; a message in
// through the edge's SMTP, out through the edge's IMAP; region a stopped;
// the same message read through the edge again, now served by region b
// after replication; region a started; teardown leaves nothing behind.
func TestReferenceStack(t *testing.T) {
	ctx, env, runID := upForTest(t, referenceStack, 8*time.Minute)
	t.Run("toxiproxy API unreachable from every service", func(t *testing.T) {
		// socat is in every reference image; the link answers with the
		// store's greeting (read only: Toxiproxy drops a connection whose
		// client has shut its side), the API not at all.
		get := `printf 'GET /proxies HTTP/1.0\r\n\r\n' | timeout 10 socat -T3 - TCP:%s,connect-timeout=3`
		greeting := `timeout 10 socat -u -T2 TCP:%s,connect-timeout=3 -`
		link, _ := env.Link("edge-store-a")
		for _, n := range env.Nodes() {
			code, out, err := n.Exec(ctx, []string{"sh", "-c", fmt.Sprintf(greeting, "toxiproxy:"+strconv.Itoa(link.Listen()))})
			if err != nil || code != 0 || !strings.HasPrefix(out, "* OK") {
				t.Errorf("%s: link edge-store-a: exit %d %q %v", n.Name(), code, out, err)
			}
			for _, addr := range []string{"toxiproxy:8474", ProxyAPIHost + ":8474"} {
				code, out, err := n.Exec(ctx, []string{"sh", "-c", fmt.Sprintf(get, addr)})
				if err != nil || code == 0 {
					t.Errorf("%s reached toxiproxy's API at %s: exit %d %q %v", n.Name(), addr, code, out, err)
				} else {
					t.Logf("%s -> %s: exit %d %s", n.Name(), addr, code, strings.TrimSpace(out))
				}
			}
		}
	})

	smtpAddr, err := env.Endpoint("smtp")
	if err != nil {
		t.Fatal(err)
	}
	imapAddr, err := env.Endpoint("imap")
	if err != nil {
		t.Fatal(err)
	}
	users := env.Users()
	to, from := users[0], users[1]
	id := runID + ".harness.1"
	body := "Hello from the harness acceptance test.\r\nRun " + runID + ".\r\n"
	if err := sendMail(smtpAddr, from.Address, to.Address, id, body); err != nil {
		t.Fatalf("send through the edge: %v", err)
	}
	check := func(addr string) func() error {
		return func() error {
			got, err := findMail(addr, to, id)
			if err != nil {
				return err
			}
			if got != body {
				return fmt.Errorf("body %q, want %q", got, body)
			}
			return nil
		}
	}
	took, err := poll(ctx, 60*time.Second, check(imapAddr))
	if err != nil {
		t.Fatalf("read through the edge: %v", err)
	}
	t.Logf("delivered and read through the edge after %s", took.Round(time.Millisecond))

	// A redelivery (the same message for the same recipient again, as an
	// MTA stopped between the store's answer and its own bookkeeping sends
	// it) is dropped by the store: once a message sent after it has
	// arrived, the first still has exactly one copy.
	if err := sendMail(smtpAddr, from.Address, to.Address, id, body); err != nil {
		t.Fatalf("send the redelivery: %v", err)
	}
	after := runID + ".harness.2" // not id + suffix: IMAP SEARCH HEADER matches substrings
	if err := sendMail(smtpAddr, from.Address, to.Address, after, body); err != nil {
		t.Fatalf("send through the edge: %v", err)
	}
	if _, err := poll(ctx, 60*time.Second, func() error { _, err := findMail(imapAddr, to, after); return err }); err != nil {
		t.Fatalf("read through the edge: %v", err)
	}
	// The two may be delivered in either order: give the redelivery a
	// moment more (a second copy shows within a second or two).
	time.Sleep(3 * time.Second)
	if err := check(imapAddr)(); err != nil {
		t.Errorf("after a redelivery of the same message: %v (want it dropped)", err)
	}

	// Replication first, seen on store-b directly, so that losing region a
	// tests failover and not replication lag.
	storeB, err := env.Node("store-b")
	if err != nil {
		t.Fatal(err)
	}
	storeBAddr, err := storeB.Addr("imap")
	if err != nil {
		t.Fatal(err)
	}
	if took, err = poll(ctx, 90*time.Second, check(storeBAddr)); err != nil {
		t.Fatalf("replicated to store-b: %v", err)
	}
	t.Logf("replicated to store-b after %s", took.Round(time.Millisecond))

	regionA, err := env.Region("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := regionA.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if took, err = poll(ctx, 60*time.Second, check(imapAddr)); err != nil {
		t.Fatalf("read through the edge with region a stopped: %v", err)
	}
	t.Logf("read through the edge from region b %s after region a stopped", took.Round(time.Millisecond))
	if err := regionA.Start(ctx); err != nil {
		t.Fatalf("start region a: %v", err)
	}
	if _, err = poll(ctx, 60*time.Second, check(imapAddr)); err != nil {
		t.Fatalf("read through the edge after region a returned: %v", err)
	}
}

// TestUpTimes is acceptance 2 (make bench-up). It runs only when asked for
// by name (-run TestUpTimes) or with MAILCHAOS_BENCH_UP=1.
func TestUpTimes(t *testing.T) {
	if !benchRequested() {
		t.Skip("run with -run TestUpTimes (make bench-up)")
	}
	needDocker(t)
	cold := coldImages(t)
	d, err := Load(referenceStack)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runID := testRunID()
	start := time.Now()
	env, err := Up(ctx, d, Options{RunID: runID, OutDir: testOutDir(t, runID), Logger: testLogger(t)})
	warm := time.Since(start)
	if err != nil {
		_ = env.Teardown(context.Background())
		t.Fatal(err)
	}
	start = time.Now()
	if err := env.Teardown(ctx); err != nil {
		t.Error(err)
	}
	down := time.Since(start)
	assertNothingLeft(t, runID)
	fmt.Printf("cold_images_s %s\n", cold)
	fmt.Printf("warm_up_s %.1f\n", warm.Seconds())
	fmt.Printf("teardown_s %.1f\n", down.Seconds())
	fmt.Printf("services %d users %d (warm up target: < 30 s)\n", len(d.Services), d.Users.Count)
	if warm > 30*time.Second {
		t.Errorf("warm_up_s %.1f is over the 30 s target", warm.Seconds())
	}
}

func benchRequested() bool {
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "TestUpTimes") {
		return true
	}
	return envTrue("MAILCHAOS_BENCH_UP")
}
