package render

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
)

const sec = history.Offset(time.Second)

// fixture describes a synthetic run: 60 s of SMTP and IMAP load with one
// region-loss fault from 20 s to 32 s, during which attempts fail and, if
// lose > 0, some accepted messages never reach the final read.
type fixture struct {
	runID, scenario string
	lose            int
	duration        history.Offset
}

// writeHistory writes the fixture's history to path and returns the
// accepted message IDs.
func (f fixture) writeHistory(t testing.TB, path string) []string {
	t.Helper()
	if f.duration == 0 {
		f.duration = 60 * sec
	}
	w, err := history.Create(path, history.NewClock(), history.Header{RunID: f.runID, Seed: 42, Scenario: f.scenario})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 1))
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	ev := func(kind history.Kind, name, target string, start, end history.Offset) {
		must(w.Write(history.Record{Type: history.TypeEvent, Kind: kind, Client: "nemesis", Name: name, Target: target, Start: start, End: end, Outcome: history.OK}))
	}
	phase := func(name history.Phase, at history.Offset, attempt int) {
		must(w.Write(history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(name), Start: at, End: at, Attempt: attempt}))
	}
	faultStart, faultEnd := 20*sec, 32*sec
	inFault := func(o history.Offset) bool { return o >= faultStart && o < faultEnd }
	phase(history.PhaseSteady, 0, 0)
	phase(history.PhaseLoad, 5*sec, 0)
	ev(history.KindFaultInject, "region-loss", "region-a", faultStart, faultStart+sec/2)

	var accepted []string
	type copyAt struct {
		mailbox string
		uid     uint32
	}
	where := map[string]copyAt{}
	seq := 0
	for at := 5 * sec; at < f.duration-5*sec; at += 50 * history.Offset(time.Millisecond) {
		seq++
		client := fmt.Sprintf("smtp-%d", seq%4)
		id := fmt.Sprintf("%s.%s.%d", f.runID, client, seq)
		rcpt := fmt.Sprintf("user%04d@example.test", 1+seq%20)
		lat := history.Offset(time.Duration(15+rng.IntN(30)) * time.Millisecond)
		end := at + lat
		attempts := 1
		if inFault(at) {
			// One refused attempt, then a retry 1 s later succeeds —
			// except in the middle of the fault, where the budget runs out.
			must(w.Op(history.Record{Client: client, Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, Attempt: 1, MsgID: id, Rcpt: []string{rcpt}, Outcome: history.Fail, Class: "conn-refused", Stage: "connect", Start: at, End: at + 2*history.Offset(time.Millisecond)}))
			attempts = 2
			end = at + sec + lat
			if at >= 24*sec && at < 27*sec {
				must(w.Op(history.Record{Client: client, Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: 2, MsgID: id, Rcpt: []string{rcpt}, Outcome: history.Fail, Class: "conn-refused", Stage: "connect", Start: at, End: end}))
				continue
			}
		}
		must(w.Op(history.Record{Client: client, Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: attempts, MsgID: id, Rcpt: []string{rcpt}, Outcome: history.OK, Class: "smtp:250 2.0.0", Start: at, End: end, BodySHA256: "ab", Size: 1200}))
		accepted = append(accepted, id)
		where[id] = copyAt{rcpt + "/INBOX", uint32(seq)}
		delay := history.Offset(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		if inFault(end) {
			delay += 4 * sec
		}
		must(w.Seen(history.Record{Client: "imap-idle-1", Kind: history.KindIMAPIdle, MsgID: id, Mailbox: rcpt + "/INBOX", UIDValidity: 1, UID: uint32(seq), Start: end + delay}))
	}
	for at := 5 * sec; at < f.duration-5*sec; at += 200 * history.Offset(time.Millisecond) {
		out := history.OK
		if at >= 22*sec && at < 26*sec {
			out = history.Fail
		}
		must(w.Op(history.Record{Client: "imap-2", Kind: history.KindIMAPFetch, Scope: history.ScopeOp, Attempt: 1, Outcome: out, Stage: "fetch", Start: at, End: at + history.Offset(time.Duration(5+rng.IntN(20))*time.Millisecond)}))
	}
	ev(history.KindFaultHeal, "region-loss", "region-a", faultEnd, faultEnd+2*sec)
	end := f.duration - 5*sec
	phase(history.PhaseHeal, faultEnd, 0)
	phase(history.PhaseConverge, end, 0)
	phase(history.PhaseFinalRead, end+sec, 1)
	for i, id := range accepted {
		if i >= len(accepted)-f.lose {
			break
		}
		c := where[id]
		must(w.Final(history.Record{Client: "final", MsgID: id, Mailbox: c.mailbox, UIDValidity: 1, UID: c.uid, BodySHA256: "ab", Attempt: 1, Start: end + sec + history.Offset(i)}))
	}
	phase(history.PhaseFinalReadDone, end+2*sec, 1)
	phase(history.PhaseDone, end+3*sec, 0)
	must(w.Close())
	return accepted
}

// verdict builds the verdict the checkers would give the fixture's history:
// reports/check is tested on its own, render only draws what it says.
func (f fixture) verdict(accepted []string) *check.Verdict {
	lost := int64(f.lose)
	st, reason := check.Success, "no accepted message lost, duplicated or corrupted; thresholds met"
	ledger := check.Result{Name: check.CheckLedger, Status: check.Success, Reason: fmt.Sprintf("%d accepted messages all present once, byte-identical", len(accepted))}
	if lost > 0 {
		st = check.Failure
		reason = fmt.Sprintf("%d accepted messages lost", lost)
		ledger = check.Result{Name: check.CheckLedger, Status: check.Failure, Reason: reason}
		for _, id := range accepted[len(accepted)-f.lose:] {
			ledger.Evidence = append(ledger.Evidence, check.Evidence{
				Problem: "lost", MsgID: id, Mailbox: "user0003@example.test", At: 54 * sec,
				Detail: "accepted by smtp-2 at 54.9s, 0 copies in final read round 1",
				Ops:    []check.OpRef{{Line: 1234, Type: history.TypeOp, Kind: history.KindSMTPSend, Client: "smtp-2", Scope: history.ScopeOp, Attempt: 1, Outcome: history.OK, Class: "smtp:250 2.0.0", Start: 54 * sec, End: 54*sec + 30*history.Offset(time.Millisecond)}},
			})
		}
	}
	f64 := func(v float64) *float64 { return &v }
	cvw := check.Window{Start: 24 * sec, End: 28 * sec, Duration: 4 * time.Second, Failures: 60, Stages: []string{"connect"}, Classes: []string{"conn-refused"}, Faults: []int{0}}
	imapw := check.Window{Start: 22 * sec, End: 26 * sec, Duration: 4 * time.Second, Failures: 20, Stages: []string{"fetch"}, Classes: []string{"timeout"}, Faults: []int{0}}
	return &check.Verdict{
		Version: check.VerdictVersion, RunID: f.runID, Scenario: f.scenario, Seed: 42,
		BaseTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Span:     check.Span{Start: 0, End: 58 * sec}, Records: 4000,
		Status: st, Reason: reason,
		Policy: check.Policy{AllowClientDowntime: true, Thresholds: []string{"lost == 0", "client_visible_downtime_max < 5s", "delivery_latency_p99 < 30s"}},
		Checks: []check.Result{
			ledger,
			{Name: check.CheckIMAP, Status: check.Success, Reason: "UIDVALIDITY stable, UIDs increasing, no reappearance, flags kept"},
			{Name: check.CheckAvailability, Status: check.Success, Reason: "client-visible downtime 4s (allowed by policy)"},
		},
		Thresholds: []check.ThresholdResult{
			{Threshold: check.Threshold{Expr: "lost == 0", Metric: "lost", Op: "==", Value: 0}, Status: map[bool]check.Status{true: check.Success, false: check.Failure}[lost == 0], Measured: f64(float64(lost))},
			{Threshold: check.Threshold{Expr: "client_visible_downtime_max < 5s", Metric: "client_visible_downtime_max_s", Op: "<", Value: 5}, Status: check.Success, Measured: f64(4)},
			{Threshold: check.Threshold{Expr: "delivery_latency_p99 < 30s", Metric: "delivery_latency_p99_s", Op: "<", Value: 30}, Status: check.Success, Measured: f64(5.1)},
		},
		Ledger: check.LedgerSummary{
			Messages: int64(len(accepted)) + 60, Accepted: int64(len(accepted)), Failed: 60, Deliveries: int64(len(accepted)),
			FinalRead: true, FirstRound: 1, LastRound: 1, FinalCopies: int64(len(accepted)) - lost,
			Counts: map[check.Class]int64{check.ClassOK: int64(len(accepted)) - lost, check.ClassLost: lost, check.ClassNotDelivered: 60},
		},
		IMAP:   check.IMAPSummary{Mailboxes: 20, Observations: int64(2 * len(accepted))},
		Faults: []check.Fault{{Index: 0, Name: "region-loss", Target: "region-a", Start: 20 * sec, End: 34 * sec, Healed: true}},
		Availability: []check.ProtocolAvailability{
			{Protocol: "imap", Ops: 250, FailedOps: 20, Raw: check.Windows{Count: 1, Longest: 4 * time.Second, Total: 4 * time.Second, Windows: []check.Window{imapw}},
				ClientVisible: check.Windows{Count: 1, Longest: 4 * time.Second, Total: 4 * time.Second, Windows: []check.Window{imapw}, ByFault: []check.FaultOverlap{{Fault: 0, Windows: 1, Longest: 4 * time.Second, Downtime: 4 * time.Second}}}},
			{Protocol: "smtp", Ops: int64(len(accepted)) + 60, FailedOps: 60, Attempts: 240, FailedAttempts: 240,
				Raw:           check.Windows{Count: 1, Longest: 13 * time.Second, Total: 13 * time.Second, Windows: []check.Window{{Start: 20 * sec, End: 33 * sec, Duration: 13 * time.Second, Failures: 240, Stages: []string{"connect"}, Classes: []string{"conn-refused"}, Faults: []int{0}}}},
				ClientVisible: check.Windows{Count: 1, Longest: 4 * time.Second, Total: 4 * time.Second, Windows: []check.Window{cvw}, ByFault: []check.FaultOverlap{{Fault: 0, Windows: 1, Longest: 4 * time.Second, Downtime: 4 * time.Second}}}},
		},
		Latency: []check.OpLatency{
			{Kind: "imap.fetch", Percentiles: check.Percentiles{Count: 230, P50: 15 * time.Millisecond, P90: 22 * time.Millisecond, P99: 24 * time.Millisecond, P999: 24 * time.Millisecond, Max: 24 * time.Millisecond}},
			{Kind: "smtp.send", Percentiles: check.Percentiles{Count: int64(len(accepted)), P50: 30 * time.Millisecond, P90: 1020 * time.Millisecond, P99: 1040 * time.Millisecond, P999: 1044 * time.Millisecond, Max: 1045 * time.Millisecond}},
		},
		DeliveryLatency: check.DeliveryLatency{Percentiles: check.Percentiles{Count: int64(len(accepted)), P50: 750 * time.Millisecond, P90: 1100 * time.Millisecond, P99: 5100 * time.Millisecond, P999: 5200 * time.Millisecond, Max: 5200 * time.Millisecond}},
		QueueDrain:      []check.Drain{{Fault: 0, Name: "region-loss", At: 34 * sec, Duration: 3 * time.Second, Pending: 12, Complete: true}},
		Metrics:         map[string]float64{"lost": float64(lost), "duplicated": 0, "corrupted": 0, "client_visible_downtime_max_s": 4, "delivery_latency_p99_s": 5.1},
	}
}

// sampleRun makes a run of the given scenarios in a fresh out folder, with
// histories written straight into the run folder and two container logs.
func sampleRun(t testing.TB, out string, scenarios ...fixture) RunReport {
	t.Helper()
	run := RunReport{
		RunID: "20260102-030405-beef",
		Title: "nightly",
		Env: Environment{
			MailchaosVersion: "v0.1.0", Commit: "0123456789abcdef", Host: "ci-runner-3", OS: "linux/amd64 Debian 12",
			GoVersion: "go1.26.8", Docker: "28.1.1", Seed: 42, Command: "mailchaos run --label nightly", Stack: "fixtures/stacks/reference/stack.yaml",
			Images:   []Image{{Service: "mta-a", Ref: "mailchaos/mta:v1", ID: "sha256:1111"}, {Service: "store-a", Ref: "mailchaos/store:v1", ID: "sha256:2222"}},
			Software: []KV{{"postfix (mta-a)", "3.7.11"}, {"dovecot (store-a)", "2.3.19.1"}, {"haproxy (edge)", "2.6.12"}},
		},
		Generated: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC),
	}
	dir := filepath.Join(out, run.RunID)
	for _, f := range scenarios {
		if f.runID == "" {
			f.runID = run.RunID
		}
		p := filepath.Join(dir, f.scenario, HistoryName)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		acc := f.writeHistory(t, p)
		run.Scenarios = append(run.Scenarios, Scenario{Name: f.scenario, History: p, Verdict: f.verdict(acc), Duration: 95 * time.Second, Started: run.Generated.Add(-2 * time.Minute), Labels: []string{"nightly"}})
	}
	if err := os.MkdirAll(filepath.Join(dir, LogsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"edge", "mta-a", "store-a"} {
		if err := os.WriteFile(filepath.Join(dir, LogsDir, n+".log"), []byte(n+" started\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return run
}
