package check

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

// runShaped is a passing history laid out as a scenario writes one: the
// resolve events, the phases in order, two final-read rounds, then a
// direct read of each replica and done. It returns the records and, per
// mandatory phase, the index of its record.
func runShaped() ([]history.Record, map[string]int) {
	decl := history.Record{Type: history.TypeEvent, Kind: history.KindResolve, Client: "scenario", Name: history.ResolveReplicas, Target: "store-a,store-b", Start: ms(0), End: ms(0)}
	recs := []history.Record{decl, phase(history.PhaseSteady, 0, 1), send("m1", ok, 2, 10), seen("m1", inbox1, 1, 20),
		phase(history.PhaseLoad, 0, 30), send("m2", ok, 40, 50), seen("m2", inbox1, 2, 60),
		phase(history.PhaseHeal, 0, 70), phase(history.PhaseConverge, 0, 80)}
	at := map[string]int{}
	for round := 1; round <= 2; round++ {
		recs = append(recs, phase(history.PhaseFinalRead, round, 90000+round*1000), fin("m1", inbox1, 1, round), fin("m2", inbox1, 2, round), done(round))
		at[string(history.PhaseFinalReadDone)+" "+string(rune('0'+round))] = len(recs) - 1
	}
	for _, rep := range []string{"store-a", "store-b"} {
		recs = append(recs, rread(rep, 1), rfin(rep, "m1", inbox1, 1), rfin(rep, "m2", inbox1, 2), rdone(rep, 1))
		at[string(history.PhaseReplicaReadDone)+" "+rep] = len(recs) - 1
	}
	end := phase(history.PhaseDone, 0, 300000)
	recs = append(recs, end)
	at[string(history.PhaseDone)] = len(recs) - 1
	return recs, at
}

// A history cut anywhere before its done event is never a success, and
// names what it lacks; only the whole history passes. Cuts are made after
// every record, as a SIGKILL or an abort may leave one.
func TestCutHistoryIsNeverASuccess(t *testing.T) {
	recs, at := runShaped()
	whole := mustRun(t, cutHist(recs...), Policy{Thresholds: []string{"lost == 0"}})
	if whole.Status != Success || len(whole.Incomplete) != 0 {
		t.Fatalf("whole history: %s (%s), incomplete %v", whole.Status, whole.Reason, whole.Incomplete)
	}
	for cut := 0; cut < len(recs); cut++ {
		v := mustRun(t, cutHist(recs[:cut]...), Policy{Thresholds: []string{"lost == 0"}})
		if v.Status == Success {
			t.Fatalf("cut after %d of %d records: success (%s)", cut, len(recs), v.Reason)
		}
		if !slices.Contains(v.Incomplete, string(history.PhaseDone)) || !strings.Contains(v.Reason, "incomplete history") {
			t.Errorf("cut after %d records: incomplete %v, reason %q", cut, v.Incomplete, v.Reason)
		}
		// Each replica is owed its read from the start: the resolve event
		// declares both.
		for _, rep := range []string{"store-a", "store-b"} {
			want := cut > 0 && cut <= at[string(history.PhaseReplicaReadDone)+" "+rep] // recs[0] declares them
			if got := slices.Contains(v.Incomplete, string(history.PhaseReplicaReadDone)+" "+rep); got != want {
				t.Errorf("cut after %d records: missing replica-read-done %s = %v, want %v (%v)", cut, rep, got, want, v.Incomplete)
			}
		}
		if want := cut <= at[string(history.PhaseFinalReadDone)+" 1"]; slices.Contains(v.Incomplete, string(history.PhaseFinalReadDone)) != want {
			t.Errorf("cut after %d records: missing final-read-done = %v, want %v", cut, !want, want)
		}
	}
}

// The cut named in issue 15: after the final read and before any replica
// read or done. It used to pass on three checks.
func TestCutAfterTheFinalRead(t *testing.T) {
	recs, at := runShaped()
	v := mustRun(t, cutHist(recs[:at[string(history.PhaseFinalReadDone)+" 2"]+1]...), Policy{})
	want := []string{string(history.PhaseReplicaReadDone) + " store-a", string(history.PhaseReplicaReadDone) + " store-b", string(history.PhaseDone)}
	if v.Status != Unknown || !slices.Equal(v.Incomplete, want) {
		t.Fatalf("status %s (%s), incomplete %v, want unknown and %v", v.Status, v.Reason, v.Incomplete, want)
	}
	if r := result(v, CheckReplicas); r.Status != Unknown {
		t.Errorf("replicas check %s (%s), want unknown: both were declared and neither read", r.Status, r.Reason)
	}
}

// What a cut history shows last is not final: a failure it shows becomes
// unknown (the reason keeps it). A history that ended keeps its failure,
// and says what it lacks.
func TestIncompleteFailures(t *testing.T) {
	lost := []history.Record{send("m1", ok, 0, 10), done(1)}
	if v := mustRun(t, cutHist(lost...), Policy{}); v.Status != Unknown || !strings.Contains(v.Reason, "1 lost") {
		t.Errorf("cut: %s (%s), want unknown naming the loss", v.Status, v.Reason)
	}
	if v := mustRun(t, mkHist(lost...), Policy{}); v.Status != Failure || len(v.Incomplete) != 0 {
		t.Errorf("whole: %s (%s) incomplete %v, want failure", v.Status, v.Reason, v.Incomplete)
	}
	// No complete final read, and a UID reused: a definite failure, with
	// the missing read named.
	reused := []history.Record{send("m1", ok, 0, 10), send("m2", ok, 50, 60), seen("m1", inbox1, 1, 20), seen("m2", inbox1, 1, 70)}
	v := mustRun(t, mkHist(reused...), Policy{})
	if v.Status != Failure || !slices.Equal(v.Incomplete, []string{string(history.PhaseFinalReadDone)}) || !strings.Contains(v.Reason, "no final-read-done") {
		t.Errorf("ended without a final read: %s (%s) incomplete %v", v.Status, v.Reason, v.Incomplete)
	}
}

// realHistory reads a gzipped history recorded by a real run of the
// steady-state scenario on the reference stack (testdata/real) and
// returns its lines.
func realHistory(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "real", name+".jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

// judgeLines judges the given lines of a history as a file.
func judgeLines(t *testing.T, lines []string) Verdict {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Run(context.Background(), path, Policy{Thresholds: []string{"lost == 0", "accepted > 0"}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A real run's history passes whole; cut before or after any of its phase
// events, it is never a success, and names what it lacks.
func TestRealHistoryCutAtEveryPhase(t *testing.T) {
	lines := realHistory(t, "steady-state")
	if v := judgeLines(t, lines); v.Status != Success || len(v.Incomplete) != 0 {
		t.Fatalf("whole real history: %s (%s), incomplete %v", v.Status, v.Reason, v.Incomplete)
	}
	cuts := 0
	for i, l := range lines {
		if !strings.Contains(l, `"kind":"phase"`) {
			continue
		}
		for _, cut := range []int{i, i + 1} {
			if cut == len(lines) {
				continue // the whole history
			}
			v := judgeLines(t, lines[:cut])
			if v.Status == Success || !slices.Contains(v.Incomplete, string(history.PhaseDone)) {
				t.Errorf("cut after line %d (%s): %s, incomplete %v", cut, strings.TrimSpace(l), v.Status, v.Incomplete)
			}
			cuts++
		}
	}
	if cuts < 20 {
		t.Fatalf("only %d cuts: not the history of a whole run", cuts)
	}
}

// A history left by a run SIGKILLed in its convergence window: unknown,
// lacking every read and its end.
func TestRealHistoryOfAKilledRun(t *testing.T) {
	v := judgeLines(t, realHistory(t, "killed-in-converge"))
	want := []string{string(history.PhaseFinalReadDone), string(history.PhaseReplicaReadDone) + " store-a", string(history.PhaseReplicaReadDone) + " store-b", string(history.PhaseDone)}
	if v.Status != Unknown || !slices.Equal(v.Incomplete, want) {
		t.Fatalf("killed run: %s (%s), incomplete %v, want unknown and %v", v.Status, v.Reason, v.Incomplete, want)
	}
}
