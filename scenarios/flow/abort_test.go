package flow

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
)

// Each read of the final-read phase gets an equal share of the time left,
// at most ReadTimeout: the replica reads keep theirs however slow the
// rounds were.
func TestReadBound(t *testing.T) {
	if got := ReadBound(context.Background(), 4, 1); got != ReadTimeout {
		t.Errorf("no deadline: %v, want ReadTimeout", got)
	}
	for _, c := range []struct {
		left        time.Duration
		reads, gaps int
		want        time.Duration
	}{
		{FinalReadTimeout, 4, 1, ReadTimeout},                // the phase's own bound: full reads
		{10*time.Minute + RoundGap, 4, 1, 150 * time.Second}, // a phase cut short: shared
		{90 * time.Second, 2, 0, 45 * time.Second},           // the rounds took their time: the replicas share the rest
		{2 * time.Second, 1, 1, 0},                           // no time left for the gap: nothing
	} {
		ctx, cancel := context.WithTimeout(context.Background(), c.left)
		got := ReadBound(ctx, c.reads, c.gaps)
		cancel()
		if got > c.want || got < c.want-time.Second {
			t.Errorf("%v left, %d reads, %d gaps: %v, want %v", c.left, c.reads, c.gaps, got, c.want)
		}
	}
}

// startTestRun starts a run of a one-fault scenario on the embedded
// reference stack (nothing in Docker) with a history in a temporary folder.
func startTestRun(t *testing.T) *Run {
	t.Helper()
	p := Defaults()
	p.Out, p.RunID, p.Seed = t.TempDir(), "ab-unit", 7
	s := Scenario{Name: "unit", Proves: "nothing", Labels: []string{LabelSmoke}}
	r, err := Start(p, s, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Teardown(context.Background()) })
	return r
}

// A run whose history lacks its final read proves nothing: the check phase
// fails (a harness failure, no gate judged), with the verdict kept for the
// report.
func TestCheckRefusesAnIncompleteHistory(t *testing.T) {
	r := startTestRun(t)
	if err := r.History.Phase(history.PhaseLoad, 0, ""); err != nil {
		t.Fatal(err)
	}
	err := r.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "history incomplete (no final-read-done") {
		t.Fatalf("check: %v, want a refusal of the incomplete history", err)
	}
	if !r.Judged || r.Verdict.Status == check.Success || r.Partial {
		t.Errorf("verdict %s judged %v partial %v", r.Verdict.Status, r.Judged, r.Partial)
	}
	if got := r.Err(); !strings.HasPrefix(got, "check: history incomplete") {
		t.Errorf("Err = %q", got)
	}
	// The stack declares two replicas: a history cut before their reads
	// owes them.
	for _, rep := range []string{"store-a", "store-b"} {
		if !slices.Contains(r.Verdict.Incomplete, string(history.PhaseReplicaReadDone)+" "+rep) {
			t.Errorf("incomplete %v lacks %s's read", r.Verdict.Incomplete, rep)
		}
	}
}

// An unfinished run (interrupted in its load phase) is judged on what it
// recorded: a partial verdict, never a pass, that says the run was cut.
func TestJudgePartial(t *testing.T) {
	r := startTestRun(t)
	r.phase(history.PhaseLoad, 0, "")
	if r.Phase() != string(history.PhaseLoad) {
		t.Errorf("phase %q, want load", r.Phase())
	}
	if err := r.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.JudgePartial(context.Background())
	if !r.Judged || !r.Partial || r.Verdict.Status != check.Unknown || !slices.Contains(r.Verdict.Incomplete, string(history.PhaseDone)) {
		t.Fatalf("partial verdict: judged %v partial %v status %s incomplete %v", r.Judged, r.Partial, r.Verdict.Status, r.Verdict.Incomplete)
	}
}
