package flow

import (
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
)

func TestApplyImageSets(t *testing.T) {
	d := func() *harness.Descriptor {
		return &harness.Descriptor{Name: "ref", Services: map[string]*harness.ServiceSpec{
			"mta-a": {Name: "mta-a", Image: "mailchaos/mta:v1", UpgradeImage: "mailchaos/mta:v2"},
			"edge":  {Name: "edge", Image: "mailchaos/edge:v1"},
		}}
	}
	got := d()
	if err := ApplyImageSets(got, "v7", "v8"); err != nil {
		t.Fatal(err)
	}
	if m := got.Services["mta-a"]; m.Image != "mailchaos/mta:v7" || m.UpgradeImage != "mailchaos/mta:v8" {
		t.Errorf("tags: mta-a = %s -> %s", m.Image, m.UpgradeImage)
	}
	if e := got.Services["edge"]; e.Image != "mailchaos/edge:v1" {
		t.Errorf("a service without an upgrade image must keep its image, got %s", e.Image)
	}
	got = d()
	if err := ApplyImageSets(got, "mta-a=acme/mta:1.0", "mta-a=acme/mta:2.0,edge=acme/edge:2"); err != nil {
		t.Fatal(err)
	}
	if m := got.Services["mta-a"]; m.Image != "acme/mta:1.0" || m.UpgradeImage != "acme/mta:2.0" {
		t.Errorf("pairs: mta-a = %s -> %s", m.Image, m.UpgradeImage)
	}
	if e := got.Services["edge"]; e.UpgradeImage != "acme/edge:2" {
		t.Errorf("pairs: edge upgrade = %s", e.UpgradeImage)
	}
	if err := ApplyImageSets(d(), "", "store-z=acme/store:2"); err == nil {
		t.Error("an unknown service was accepted")
	}
}

// Missing drives convergence: it counts accepted deliveries a read did not
// find, and nothing else (failed and indeterminate sends are not owed).
func TestMissing(t *testing.T) {
	dir := t.TempDir()
	clock := history.NewClock()
	h, _ := history.Create(filepath.Join(dir, "h.jsonl"), clock, history.Header{RunID: "r"})
	send := func(id string, o history.Outcome, rcpt ...string) {
		if err := h.Op(history.Record{Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, MsgID: id, Outcome: o, Rcpt: rcpt}); err != nil {
			t.Fatal(err)
		}
	}
	send("r.1", history.OK, "a@x.test", "B@x.test")
	send("r.2", history.OK, "a@x.test")
	send("r.3", history.Fail, "a@x.test")
	send("r.4", history.Indeterminate, "a@x.test")
	_ = h.Close()
	read, _ := history.Create(filepath.Join(dir, "read.jsonl"), clock, history.Header{RunID: "r"})
	_ = read.Final(history.Record{Mailbox: "a@x.test/INBOX", UID: 1, MsgID: "r.1", Start: history.Offset(time.Second)})
	_ = read.Final(history.Record{Mailbox: "b@x.test/INBOX", UID: 1, MsgID: "r.1"})
	// Replica store-b has everything; store-c has only r.2. A record of
	// an undeclared replica counts for nobody.
	for i, f := range []history.Record{
		{Target: "store-b", Mailbox: "a@x.test/INBOX", MsgID: "r.1"},
		{Target: "store-b", Mailbox: "a@x.test/INBOX", MsgID: "r.2"},
		{Target: "store-b", Mailbox: "b@x.test/INBOX", MsgID: "r.1"},
		{Target: "store-c", Mailbox: "a@x.test/INBOX", MsgID: "r.2"},
		{Target: "store-z", Mailbox: "a@x.test/INBOX", MsgID: "r.2"},
	} {
		f.UID = uint32(i + 1)
		if err := read.Final(f); err != nil {
			t.Fatal(err)
		}
	}
	_ = read.Close()
	got, err := Missing(filepath.Join(dir, "h.jsonl"), filepath.Join(dir, "read.jsonl"), "store-b", "store-c")
	want := map[string]int{"": 1, "store-b": 0, "store-c": 2} // endpoint: r.2 to a@x.test; store-c: r.1 to both
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("Missing = %v, %v; want %v", got, err, want)
	}
}

// Convergence also waits for flag changes: an acknowledged STORE whose
// message the endpoint read shows without the flag is owed; a failed STORE,
// a replica's read and a message the read does not show are not counted
// here (the last is a missing delivery already).
func TestMissingFlags(t *testing.T) {
	dir := t.TempDir()
	clock := history.NewClock()
	h, _ := history.Create(filepath.Join(dir, "h.jsonl"), clock, history.Header{RunID: "r"})
	op := func(r history.Record) {
		r.Scope = history.ScopeOp
		if err := h.Op(r); err != nil {
			t.Fatal(err)
		}
	}
	op(history.Record{Client: "smtp-1", Kind: history.KindSMTPSend, MsgID: "r.1", Outcome: history.OK, Rcpt: []string{"a@x.test"}})
	op(history.Record{Client: "smtp-1", Kind: history.KindSMTPSend, MsgID: "r.2", Outcome: history.OK, Rcpt: []string{"a@x.test"}})
	store := func(uid uint32, o history.Outcome, flags ...string) {
		op(history.Record{Client: "imap-flag-1", Kind: history.KindIMAPStore, Mailbox: "a@x.test/INBOX", UIDValidity: 7, UID: uid, Flags: flags, Outcome: o})
	}
	store(1, history.OK, `\Seen`)
	store(1, history.OK, `\Flagged`)
	store(2, history.Fail, `\Seen`)
	store(3, history.OK, `\Seen`) // a message no read shows
	_ = h.Close()
	read := func(flags1 ...string) map[string]int {
		t.Helper()
		path := filepath.Join(dir, "read.jsonl")
		w, _ := history.Create(path, clock, history.Header{RunID: "r"})
		for _, f := range []history.Record{
			{Mailbox: "a@x.test/INBOX", UIDValidity: 7, UID: 1, MsgID: "r.1", Flags: flags1},
			{Mailbox: "a@x.test/INBOX", UIDValidity: 7, UID: 2, MsgID: "r.2"},
			{Target: "store-b", Mailbox: "a@x.test/INBOX", UIDValidity: 7, UID: 1, MsgID: "r.1"},
			{Target: "store-b", Mailbox: "a@x.test/INBOX", UIDValidity: 7, UID: 2, MsgID: "r.2"},
		} {
			if err := w.Final(f); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Close()
		got, err := Missing(filepath.Join(dir, "h.jsonl"), path, "store-b")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, c := range []struct {
		flags []string
		want  int
	}{{nil, 2}, {[]string{`\Seen`}, 1}, {[]string{`\Flagged`, `\Seen`}, 0}} {
		if got := read(c.flags...); got[""] != c.want || got["store-b"] != 0 {
			t.Errorf("read shows r.1 with %v: Missing = %v, want %d owed through the endpoint", c.flags, got, c.want)
		}
	}
}

func TestScenarioValidate(t *testing.T) {
	ok := Scenario{Name: "x", Proves: "y", Labels: []string{LabelNightly},
		Faults: []FaultAt{{At: 0.2, For: 0.5, Spec: "partition:wan-a-b"}}, Policy: policy(GateThresholds...)}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Scenario{
		{Name: "x", Proves: "y"}, // no labels
		{Name: "x", Proves: "y", Labels: []string{"nightly"}, Faults: []FaultAt{{At: 0.8, For: 0.5, Spec: "kill:mta-a"}}},
		{Name: "x", Proves: "y", Labels: []string{"nightly"}, Policy: policy("lost = 0")},
	}
	for i, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("bad scenario %d accepted", i)
		}
	}
	at, hold := FaultAt{At: 0.25, For: 0.5}.Offsets(time.Minute)
	if at != 15*time.Second || hold != 30*time.Second {
		t.Errorf("offsets %s %s", at, hold)
	}
}

func policy(th ...string) (p check.Policy) { p.Thresholds = th; return p }
