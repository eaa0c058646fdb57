package flow

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// convergeTraffic is a stack whose endpoint shows the one accepted message
// from the first probe on and whose replica shows it from its second read.
type convergeTraffic struct {
	reads      []string // "endpoint" or the replica's name, in order
	replicaHas int      // the replica's reads from which on it has the message
}

func (*convergeTraffic) Load(context.Context, history.Phase, time.Duration) error { return nil }
func (*convergeTraffic) Replicas() []string                                      { return []string{"store-b"} }

func (c *convergeTraffic) FinalRead(_ context.Context, w *history.Writer, _ int) error {
	c.reads = append(c.reads, "endpoint")
	return w.Final(history.Record{Mailbox: "a@x.test/INBOX", UIDValidity: 1, UID: 1, MsgID: "r.1"})
}

func (c *convergeTraffic) ReadReplica(_ context.Context, w *history.Writer, name string) error {
	c.reads = append(c.reads, name)
	if countOf(c.reads, name) >= c.replicaHas {
		return w.Final(history.Record{Target: name, Mailbox: "a@x.test/INBOX", UIDValidity: 1, UID: 1, MsgID: "r.1"})
	}
	return nil
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// Convergence reads again only the targets whose last probe lacked
// something: the endpoint, complete at the first probe, is not read at the
// second, which waits for the replica alone.
func TestConvergeReadsOnlyWhatIsStillMissing(t *testing.T) {
	dir := t.TempDir()
	h, err := history.Create(filepath.Join(dir, "history.jsonl"), history.NewClock(), history.Header{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Op(history.Record{Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, MsgID: "r.1", Outcome: history.OK, Rcpt: []string{"a@x.test"}}); err != nil {
		t.Fatal(err)
	}
	tr := &convergeTraffic{replicaHas: 2}
	r := &Run{P: Params{RunID: "r", Converge: time.Minute}, S: Scenario{Name: "s"}, Dir: dir,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), History: h, Traffic: tr}
	if err := r.converge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"endpoint", "store-b", "store-b"}; !slices.Equal(tr.reads, want) {
		t.Errorf("probe reads %v, want %v", tr.reads, want)
	}
}
