package harnessenv

import (
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/faults"
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
	t.Run("missing capabilities are clear errors", func(t *testing.T) {
		if _, err := faults.Parse(fe, "region-destroy:a"); err == nil || !strings.Contains(err.Error(), "DropVolumes") {
			t.Errorf("region-destroy: %v", err)
		}
		if _, err := faults.Parse(fe, "failover:mta"); err == nil || !strings.Contains(err.Error(), "role standby") {
			t.Errorf("failover: %v", err)
		}
	})
}
