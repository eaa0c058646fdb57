package harnessenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/harness"
)

// The reference store keeps at most one copy of a message an MTA delivers
// again, also when the store was killed between saving the message and
// writing the duplicate mark (a region loss kills the MTA in the same
// instant, so the MTA never heard 250 and redelivers). The test drives
// LMTP inside store-a and plays the states such a kill leaves behind.
func TestStoreDropsRedelivery(t *testing.T) {
	e, _ := stack(t)
	n, err := e.Node("store-a")
	if err != nil {
		t.Fatal(err)
	}
	rcpt := e.Users()[0].Address
	home := storeHome(rcpt)

	// A message delivered, then delivered again: the duplicate mark drops it.
	id := newID()
	deliverLMTP(t, n, rcpt, id)
	deliverLMTP(t, n, rcpt, id)
	if c := inboxCount(t, n, rcpt, id); c != 1 {
		t.Fatalf("delivered twice with the mark in place: %d copies, want 1", c)
	}

	// Killed after the save, before the mark: the mark is gone, the message
	// is in the mailbox. The redelivery must still be dropped.
	storeExec(t, n, "rm -f "+home+"/.dovecot.lda-dupes")
	deliverLMTP(t, n, rcpt, id)
	if c := inboxCount(t, n, rcpt, id); c != 1 {
		t.Errorf("redelivered after a kill between save and mark: %d copies, want 1", c)
	}

	// Killed before the save: the delivery was started (the ledger has it)
	// but nothing was saved. The redelivery must be kept.
	id2 := newID()
	storeExec(t, n, fmt.Sprintf("printf '%%s\\n' '%s <%s@mailchaos.test>' >>%s/.redelivery-started && chown vmail:vmail %s/.redelivery-started", rcpt, id2, home, home))
	deliverLMTP(t, n, rcpt, id2)
	if c := inboxCount(t, n, rcpt, id2); c != 1 {
		t.Errorf("redelivered after a kill before the save: %d copies, want 1", c)
	}
}

// storeHome is a user's home on the reference store (userdb static,
// home=/srv/mail/%d/%n).
func storeHome(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return "/srv/mail/" + domain + "/" + local
}

// storeExec runs a shell script in n and fails the test unless it exits 0.
func storeExec(t *testing.T, n *harness.Node, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, out, err := n.Exec(ctx, []string{"sh", "-c", script})
	if err != nil || code != 0 {
		t.Fatalf("exec %q in %s: exit %d, %v: %s", script, n.Name(), code, err, out)
	}
	return out
}

// deliverLMTP delivers one message with Message-ID <id@mailchaos.test> to
// rcpt over the store's own LMTP port and fails unless it was accepted.
func deliverLMTP(t *testing.T, n *harness.Node, rcpt, id string) {
	t.Helper()
	out := storeExec(t, n, fmt.Sprintf(`printf 'LHLO test\r\nMAIL FROM:<faults@example.test>\r\nRCPT TO:<%s>\r\nDATA\r\nMessage-ID: <%s@mailchaos.test>\r\nX-Mailchaos-Id: %s\r\nSubject: %s\r\n\r\nbody\r\n.\r\nQUIT\r\n' | socat -t10 - TCP:127.0.0.1:24`, rcpt, id, id, id))
	if !strings.Contains(out, "250 2.0.0 <"+rcpt+">") {
		t.Fatalf("LMTP delivery of %s to %s not accepted:\n%s", id, rcpt, out)
	}
}

// inboxCount counts rcpt's INBOX messages carrying id (doveadm search).
func inboxCount(t *testing.T, n *harness.Node, rcpt, id string) int {
	t.Helper()
	out := storeExec(t, n, fmt.Sprintf("doveadm search -u %s mailbox INBOX header X-Mailchaos-Id %s | wc -l", rcpt, id))
	c, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("count %s: %q", id, out)
	}
	return c
}
