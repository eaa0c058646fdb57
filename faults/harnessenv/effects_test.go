package harnessenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
)

// TestFaultEffects shows each kind's effect and heal through the stack's
// own endpoints and published ports.
func TestFaultEffects(t *testing.T) {
	e, fe := stack(t)
	smtpEP := endpoint(t, e, "smtp")
	imapEP := endpoint(t, e, "imap")

	t.Run("partition client-smtp", func(t *testing.T) {
		during(t, fe, "partition:client-smtp", func() {
			if l, err := banner(smtpEP, time.Second); err == nil {
				t.Errorf("banner %q through a partitioned link", l)
			}
		})
		if l, err := banner(smtpEP, 5*time.Second); err != nil || !strings.HasPrefix(l, "220") {
			t.Errorf("after heal: %q %v", l, err)
		}
	})
	t.Run("latency client-smtp", func(t *testing.T) {
		during(t, fe, "latency:client-smtp:400ms:stream=downstream", func() {
			start := time.Now()
			if _, err := banner(smtpEP, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < 400*time.Millisecond {
				t.Errorf("banner in %v under 400ms latency", took)
			}
		})
		start := time.Now()
		if _, err := banner(smtpEP, 5*time.Second); err != nil || time.Since(start) > 300*time.Millisecond {
			t.Errorf("after heal: %v in %v", err, time.Since(start))
		}
	})
	t.Run("one-way partition client-imap downstream", func(t *testing.T) {
		during(t, fe, "partition-oneway:client-imap:downstream", func() {
			if l, err := banner(imapEP, time.Second); err == nil {
				t.Errorf("banner %q through a one-way partition", l)
			}
		})
	})
	t.Run("reset-peer client-smtp", func(t *testing.T) {
		during(t, fe, "reset-peer:client-smtp:stream=downstream", func() {
			if l, err := banner(smtpEP, 2*time.Second); err == nil {
				t.Errorf("banner %q through reset_peer", l)
			}
		})
	})
	t.Run("smtp-cut after: accepted, client not told", func(t *testing.T) {
		id := newID()
		during(t, fe, "smtp-cut:client-smtp:after", func() {
			err := sendMail(smtpEP, id)
			if err == nil || !strings.HasPrefix(err.Error(), "data-end:") {
				t.Errorf("send = %v, want a data-end failure", err)
			}
		})
		if n, err := waitCount(imapEP, id, 1, 60*time.Second); n != 1 {
			t.Errorf("message cut after the final dot: found %d times (%v), want 1", n, err)
		}
	})
	t.Run("smtp-cut before: not accepted", func(t *testing.T) {
		id := newID()
		during(t, fe, "smtp-cut:client-smtp:before", func() {
			err := sendMail(smtpEP, id)
			if err == nil || !strings.HasPrefix(err.Error(), "data-end:") {
				t.Errorf("send = %v, want a data-end failure", err)
			}
		})
		// Proof of absence: a message sent after it arrives, and it did not.
		later := newID()
		if err := sendMail(smtpEP, later); err != nil {
			t.Fatal(err)
		}
		if n, _ := waitCount(imapEP, later, 1, 60*time.Second); n != 1 {
			t.Fatalf("control message not delivered")
		}
		if n, err := imapCount(imapEP, id); err != nil || n != 0 {
			t.Errorf("message cut before the final dot found %d times (%v), want 0", n, err)
		}
	})
	t.Run("wan partition", func(t *testing.T) {
		// Both directions of the region link are cut; a message delivered
		// in region a is in store-a, not in store-b, until the heal.
		id := newID()
		storeA := nodeAddr(t, e, "store-a", "imap")
		storeB := nodeAddr(t, e, "store-b", "imap")
		fa, err := faults.Parse(fe, "partition:wan-a-b")
		if err != nil {
			t.Fatal(err)
		}
		fb, err := faults.Parse(fe, "partition:wan-b-a")
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		tl := &faults.Timeline{Events: rec, Steps: []faults.Step{{Fault: fa}, {Fault: fb}}, End: time.Hour}
		ctx, cancel := contextWithCancel()
		done := make(chan error, 1)
		go func() { done <- tl.Run(ctx) }()
		for len(tl.Active()) < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		func() {
			defer cancel()
			if err := sendMail(nodeAddr(t, e, "mta-a", "smtp"), id); err != nil {
				t.Fatal(err)
			}
			if n, err := waitCount(storeA, id, 1, 60*time.Second); n != 1 {
				t.Fatalf("not delivered in region a: %d %v", n, err)
			}
			time.Sleep(3 * time.Second)
			if n, err := imapCount(storeB, id); err != nil || n != 0 {
				t.Errorf("during the partition store-b has it %d times (%v)", n, err)
			}
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n, err := waitCount(storeB, id, 1, 6*time.Minute)
		t.Logf("after heal store-b has it %d times after %v (%v)", n, time.Since(start).Round(time.Second), err)
		if n != 1 {
			t.Errorf("not replicated to store-b after heal")
		}
	})
	t.Run("kill mta-b", func(t *testing.T) {
		addr := nodeAddr(t, e, "mta-b", "smtp")
		during(t, fe, "kill:mta-b", func() {
			if l, err := banner(addr, time.Second); err == nil {
				t.Errorf("killed mta-b answers %q", l)
			}
			// The edge fails over: mail is still accepted.
			if err := sendMail(smtpEP, newID()); err != nil {
				t.Errorf("send through the edge with mta-b dead: %v", err)
			}
		})
		if l, err := banner(addr, 5*time.Second); err != nil || !strings.HasPrefix(l, "220") {
			t.Errorf("after heal: %q %v", l, err)
		}
	})
	t.Run("pause store-b", func(t *testing.T) {
		addr := nodeAddr(t, e, "store-b", "imap")
		during(t, fe, "pause:store-b", func() {
			if l, err := banner(addr, time.Second); err == nil {
				t.Errorf("paused store-b answers %q", l)
			}
		})
	})
	t.Run("failback ends sessions on the backup store", func(t *testing.T) {
		// While the edge cannot reach store-a, a login through it lands on
		// store-b. Once store-a is back, that session must end (the client
		// reconnects to store-a): a session pinned to the backup keeps
		// writing flags where the primary does not see them.
		var c *imapclient.Client
		during(t, fe, "partition:edge-store-a", func() {
			deadline := time.Now().Add(30 * time.Second)
			for c == nil && time.Now().Before(deadline) {
				if cl, err := imapLogin(imapEP); err == nil {
					c = cl
				} else {
					time.Sleep(500 * time.Millisecond)
				}
			}
			if c == nil {
				t.Fatal("no IMAP login through the edge while store-a was cut off")
			}
		})
		defer c.Close()
		deadline := time.Now().Add(20 * time.Second)
		for c.Noop().Wait() == nil {
			if time.Now().After(deadline) {
				t.Fatal("a session on store-b is still open 20 s after store-a came back")
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	t.Run("kill-process store-a dovecot", func(t *testing.T) {
		during(t, fe, "kill-process:store-a:dovecot", func() {})
		if l, err := banner(nodeAddr(t, e, "store-a", "imap"), 5*time.Second); err != nil || !strings.HasPrefix(l, "* OK") {
			t.Errorf("after heal: %q %v", l, err)
		}
	})
	t.Run("disconnect store-b", func(t *testing.T) {
		addr := nodeAddr(t, e, "store-b", "imap")
		during(t, fe, "disconnect:store-b", func() {
			if l, err := banner(addr, time.Second); err == nil {
				t.Errorf("disconnected store-b answers %q", l)
			}
		})
	})
	t.Run("region-loss b", func(t *testing.T) {
		during(t, fe, "region-loss:b", func() {
			for _, n := range [][2]string{{"mta-b", "smtp"}, {"store-b", "imap"}} {
				if l, err := banner(nodeAddr(t, e, n[0], n[1]), time.Second); err == nil {
					t.Errorf("%s answers %q during region loss", n[0], l)
				}
			}
			if err := sendMail(smtpEP, newID()); err != nil {
				t.Errorf("send through the edge with region b lost: %v", err)
			}
		})
	})
	t.Run("upgrade and rollback mta", func(t *testing.T) {
		mta, _ := e.Node("mta-a")
		during(t, fe, "upgrade:mta:drain_timeout=5s", func() {})
		if got := mta.Image(); got != "mailchaos/mta:v2" {
			t.Errorf("after upgrade mta-a runs %s", got)
		}
		if err := sendMail(smtpEP, newID()); err != nil {
			t.Errorf("send after upgrade: %v", err)
		}
		during(t, fe, "rollback:mta:drain_timeout=5s", func() {})
		if got := mta.Image(); got != "mailchaos/mta:v1" {
			t.Errorf("after rollback mta-a runs %s", got)
		}
	})
	t.Run("every link is probed", func(t *testing.T) {
		// Every link's port is published, so a cut of any link (the WAN
		// ones too) is observed and its heal verified, not assumed.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, l := range fe.Links() {
			p, ok := l.(faults.Prober)
			if !ok {
				t.Errorf("link %s has no probe", l.Name())
				continue
			}
			if err := p.Probe(ctx); err != nil {
				t.Errorf("link %s: %v", l.Name(), err)
			}
		}
		wan, _ := fe.Link("wan-b-a")
		during(t, fe, "partition:wan-b-a", func() {
			if err := wan.(faults.Prober).Probe(ctx); err == nil {
				t.Error("probe passes through a partitioned WAN link")
			}
		})
	})
	t.Run("failover mta to the standby", func(t *testing.T) {
		standby, err := e.Node("standby")
		if err != nil {
			t.Fatal(err)
		}
		storeA := nodeAddr(t, e, "store-a", "imap")
		id := newID()
		during(t, fe, "failover:mta:drain_timeout=5s", func() {
			if err := sendMail(smtpEP, id); err != nil {
				t.Fatalf("send through the edge during the failover: %v", err)
			}
			if n, err := waitQueued(standby, id, 1, 10*time.Second); n != 1 {
				t.Fatalf("the standby's queue holds the message %d times (%v), want 1", n, err)
			}
			// Held, not delivered: a few queue runs later it is still in
			// no mailbox.
			time.Sleep(3 * time.Second)
			for _, addr := range []string{imapEP, storeA} {
				if n, err := imapCount(addr, id); err != nil || n != 0 {
					t.Errorf("during the failover the message is in the mailbox at %s %d times (%v), want 0", addr, n, err)
				}
			}
		})
		if n, err := queued(standby, id); err != nil || n != 0 {
			t.Errorf("after heal the standby still holds the message %d times (%v)", n, err)
		}
		if n, err := waitCount(imapEP, id, 1, 60*time.Second); n != 1 {
			t.Fatalf("after heal the mailbox has the message %d times (%v), want 1", n, err)
		}
		time.Sleep(3 * time.Second)
		if n, err := imapCount(imapEP, id); n != 1 {
			t.Errorf("after heal the mailbox has the message %d times (%v), want exactly 1", n, err)
		}
		// Normal traffic is back on the primaries: a new message is never held.
		later := newID()
		if err := sendMail(smtpEP, later); err != nil {
			t.Fatal(err)
		}
		if n, err := waitCount(storeA, later, 1, 60*time.Second); n != 1 {
			t.Errorf("after heal a new message reached store-a %d times (%v)", n, err)
		}
		if n, err := queued(standby, later); err != nil || n != 0 {
			t.Errorf("after heal the standby got new mail (%d, %v)", n, err)
		}
	})
	// Last: it leaves store-a without the mail of earlier tests.
	t.Run("region-destroy a", func(t *testing.T) {
		storeA := nodeAddr(t, e, "store-a", "imap")
		storeB := nodeAddr(t, e, "store-b", "imap")
		id := newID()
		if err := sendMail(nodeAddr(t, e, "mta-a", "smtp"), id); err != nil {
			t.Fatal(err)
		}
		if n, err := waitCount(storeA, id, 1, 60*time.Second); n != 1 {
			t.Fatalf("not delivered to store-a: %d %v", n, err)
		}
		if n, err := waitCount(storeB, id, 1, 90*time.Second); n != 1 {
			t.Fatalf("not replicated to store-b: %d %v", n, err)
		}
		// While store-a is looked at, store-b's replication pass must not
		// copy the message back into it: its connections to store-a close
		// at their first byte (the handshake store-a sends still passes,
		// so the link's probe, and the heal's check, see it up).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		wan, _ := fe.Link("wan-b-a")
		hold := faults.Toxic{Name: "test-hold-b-a", Type: "limit_data", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"bytes": 1}}
		if err := wan.AddToxic(ctx, hold); err != nil {
			t.Fatal(err)
		}
		defer wan.RemoveToxic(context.Background(), hold.Name)
		during(t, fe, "region-destroy:a", func() {
			if l, err := banner(storeA, time.Second); err == nil {
				t.Errorf("store-a answers %q while destroyed", l)
			}
		})
		// Read store-a itself, not through the edge (which could serve
		// store-b): its disk is new, so the message is gone from it.
		if n, err := imapCount(storeA, id); err != nil || n != 0 {
			t.Errorf("after region-destroy store-a has the message %d times (%v), want 0: its volume was not replaced", n, err)
		}
		if n, err := imapCount(storeB, id); err != nil || n != 1 {
			t.Errorf("the surviving store-b has the message %d times (%v), want 1", n, err)
		}
		// The stack is whole again: every node ready, mail in and out
		// through the edge.
		for _, n := range e.Nodes() {
			if err := n.WaitReady(ctx); err != nil {
				t.Errorf("after region-destroy: %v", err)
			}
		}
		later := newID()
		if err := sendMail(smtpEP, later); err != nil {
			t.Fatalf("send through the edge after region-destroy: %v", err)
		}
		if n, err := waitCount(imapEP, later, 1, 60*time.Second); n != 1 {
			t.Errorf("a new message through the edge after region-destroy: found %d times (%v)", n, err)
		}
	})
}

// queued counts the messages carrying id in n's Postfix queue (every queue
// but the ones of delivered mail), by reading their headers with postcat.
func queued(n *harness.Node, id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	script := `q=$(postconf -h queue_directory)
find "$q/incoming" "$q/active" "$q/deferred" "$q/hold" -type f 2>/dev/null | while read -r f; do postcat -h "$f" 2>/dev/null; done | grep -c "^X-Mailchaos-Id: $1\$"`
	code, out, err := n.Exec(ctx, []string{"sh", "-c", script, "queued", id})
	if err != nil {
		return 0, err
	}
	if code > 1 { // grep -c exits 1 on no match
		return 0, fmt.Errorf("count queued mail in %s: exit %d: %s", n.Name(), code, out)
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// waitQueued polls queued until it returns want or within passes.
func waitQueued(n *harness.Node, id string, want int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		c, err := queued(n, id)
		if (err == nil && c == want) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(300 * time.Millisecond)
	}
}
