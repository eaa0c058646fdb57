package defects

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

const defectsDir = "../../fixtures/stacks/defects"

func ptr(x float64) *float64 { return &x }

// verdict builds a verdict the way reports/check would for the given
// failing checks, ledger counts and thresholds.
func verdict(checks map[string]check.Status, counts map[check.Class]int64, metrics map[string]float64, thresholds ...check.ThresholdResult) *check.Verdict {
	v := &check.Verdict{Status: check.Success, Metrics: metrics}
	for _, name := range []string{check.CheckLedger, check.CheckIMAP, check.CheckAvailability, check.CheckReplicas} {
		st, ok := checks[name]
		if !ok && name == check.CheckReplicas {
			continue // a stack without replicas has no replicas check
		}
		if !ok {
			st = check.Success
		}
		v.Checks = append(v.Checks, check.Result{Name: name, Status: st})
		if st == check.Failure {
			v.Status = check.Failure
		}
	}
	v.Ledger.Counts = counts
	v.Thresholds = thresholds
	return v
}

func threshold(expr, metric, op string, value float64, st check.Status, measured *float64) check.ThresholdResult {
	return check.ThresholdResult{Threshold: check.Threshold{Expr: expr, Metric: metric, Op: op, Value: value}, Status: st, Measured: measured}
}

func variantRow(name string) Outcome {
	i := index(name)
	v := Catalog[i]
	return Outcome{Variant: v.Name, Scenario: v.Scenario, Expect: v.Expect, Models: v.Models, RunID: "d1-" + v.Name}
}

func cleanRow(scenario string) Outcome {
	return Outcome{Variant: Reference, Scenario: scenario, RunID: "d1-clean-" + scenario}
}

func TestJudge(t *testing.T) {
	lostVerdict := verdict(map[string]check.Status{check.CheckLedger: check.Failure},
		map[check.Class]int64{check.ClassOK: 300, check.ClassLost: 41},
		map[string]float64{"lost": 41},
		threshold("lost == 0", "lost", "==", 0, check.Failure, ptr(41)),
		threshold("delivery_latency_p99 < 30s", "delivery_latency_p99_s", "<", 30, check.Success, ptr(3.9)))
	passVerdict := verdict(nil, map[check.Class]int64{check.ClassOK: 350}, map[string]float64{"lost": 0},
		threshold("lost == 0", "lost", "==", 0, check.Success, ptr(0)))
	lateAllowed := verdict(nil, map[check.Class]int64{check.ClassOK: 350, check.ClassLate: 3}, nil)
	lateAllowed.Policy.AllowLate = true
	downtime := verdict(map[string]check.Status{check.CheckAvailability: check.Failure}, nil,
		map[string]float64{"client_visible_downtime_max_s": 18.25},
		threshold("client_visible_downtime_max == 0s", "client_visible_downtime_max_s", "==", 0, check.Failure, ptr(18.25)))
	slow := verdict(nil, map[check.Class]int64{check.ClassOK: 350}, nil,
		threshold("delivery_latency_p99 < 30s", "delivery_latency_p99_s", "<", 30, check.Failure, ptr(41.04)))
	imap := verdict(map[string]check.Status{check.CheckIMAP: check.Failure}, nil, map[string]float64{"uidvalidity_changes": 12, "uid_reused": 3})
	noRead := verdict(map[string]check.Status{check.CheckLedger: check.Unknown}, nil, nil,
		threshold("final_read == 1", "final_read", "==", 1, check.Unknown, nil),
		threshold("lost == 0", "lost", "==", 0, check.Unknown, nil))
	// replication-off: the final read (through the edge) has every message,
	// the replica in region b lacks 41 of them.
	replicaVerdict := verdict(map[string]check.Status{check.CheckReplicas: check.Failure},
		map[check.Class]int64{check.ClassOK: 700}, map[string]float64{"lost": 0, "replica_missing": 41, "replica_corrupted": 0},
		threshold("lost == 0", "lost", "==", 0, check.Success, ptr(0)),
		threshold("replica_missing == 0", "replica_missing", "==", 0, check.Failure, ptr(41)))
	replicaVerdict.Replicas = []check.ReplicaSummary{{Name: "store-a", Complete: true, Copies: 700}, {Name: "store-b", Complete: true, Copies: 659, Missing: 41}}
	replicaThreshold := verdict(nil, map[check.Class]int64{check.ClassOK: 700}, map[string]float64{"replica_corrupted": 2},
		threshold("replica_corrupted == 0", "replica_corrupted", "==", 0, check.Failure, ptr(2)))
	replicaUnread := verdict(map[string]check.Status{check.CheckReplicas: check.Unknown}, map[check.Class]int64{check.ClassOK: 700}, nil)
	replicaUnread.Ledger.FinalRead = true
	replicaNoRead := verdict(map[string]check.Status{check.CheckLedger: check.Unknown, check.CheckReplicas: check.Unknown}, nil, nil)
	rawErrs := verdict(nil, map[check.Class]int64{check.ClassOK: 1600}, map[string]float64{"smtp_failed_attempts": 37},
		threshold("smtp_failed_attempts == 0", "smtp_failed_attempts", "==", 0, check.Failure, ptr(37)))
	steadyFailed := &flow.ScenarioStatus{Name: "steady-state", Outcome: flow.OutcomeGate, Failures: []flow.SpecFailure{
		{Spec: "serves the steady load within its thresholds", Outcome: flow.OutcomeGate, Message: "failed_ops == 0 failed (measured 2)\nmore"}}}

	tests := []struct {
		name    string
		row     Outcome
		exit    int
		v       *check.Verdict
		st      *flow.ScenarioStatus
		err     string
		result  string
		actual  string
		caughtC string
	}{
		{"defect caught with its class", variantRow("silent-discard"), 1, lostVerdict, nil, "", Caught, "lost (41)", "yes"},
		{"defect found, but not as the expected class, is missed", variantRow("no-edge-health-checks"), 1, lostVerdict, nil, "", Missed, "lost (41)", "no"},
		{"defect that passed every gate is missed", variantRow("upgrade-without-drain"), 0, passVerdict, nil, "", Missed, "none", "no"},
		{"delivery latency", variantRow("slow-delivery"), 1, slow, nil, "", Caught, "delivery-latency (p99 41.0s, limit < 30.0s)", "yes"},
		{"imap invariants", variantRow("uidvalidity-reset"), 1, imap, nil, "", Caught, "imap-invariant (12 UIDVALIDITY changes, 3 UIDs reused)", "yes"},
		{"harness failure of a variant", variantRow("volatile-queue"), 2, nil, nil, "up: mta-a not ready within 60s", Error, "error: up: mta-a not ready within 60s", "error"},
		{"no final read is not a pass", variantRow("replication-off"), 1, noRead, nil, "", Missed, "no-final-read", "no"},
		{"replica missing messages", variantRow("replication-off"), 1, replicaVerdict, nil, "", Caught, "replica-missing (store-b: 41)", "yes"},
		{"replica threshold", variantRow("replication-off"), 1, replicaThreshold, nil, "", Caught, "replica-missing (replica_corrupted 2)", "yes"},
		{"replica loss seen only as lost mail is not the expected finding", variantRow("replication-off"), 1, lostVerdict, nil, "", Missed, "lost (41)", "no"},
		{"replicas that could not be judged are not a pass", variantRow("replication-off"), 1, replicaUnread, nil, "", Missed, "unmeasured (replicas)", "no"},
		{"replicas without a final read are one finding", variantRow("replication-off"), 1, replicaNoRead, nil, "", Missed, "no-final-read", "no"},
		{"clean run whose replica lacks mail is a false alarm", cleanRow("region-loss"), 1, replicaVerdict, nil, "", FalseAlarm, "replica-missing (store-b: 41)", "FALSE ALARM"},
		{"raw client errors in a planned upgrade", variantRow("upgrade-without-drain"), 1, rawErrs, nil, "", Caught, "raw-errors (smtp_failed_attempts 37, limit == 0)", "yes"},
		{"clean pass", cleanRow("steady-state"), 0, passVerdict, nil, "", Clean, "none", "clean"},
		{"late allowed by the policy is no finding", cleanRow("mta-crash"), 0, lateAllowed, nil, "", Clean, "none", "clean"},
		{"clean run with downtime is a false alarm", cleanRow("region-loss"), 1, downtime, nil, "", FalseAlarm, "client-visible-downtime (longest 18.2s)", "FALSE ALARM"},
		{"clean run failing only its steady gate is a false alarm", cleanRow("steady-state"), 1, passVerdict, steadyFailed, "", FalseAlarm, "steady-state-gate (failed_ops == 0 failed (measured 2))", "FALSE ALARM"},
		{"exit 1 without any finding still fails", cleanRow("rolling-upgrade"), 1, passVerdict, nil, "", FalseAlarm, "gate (exit code 1)", "FALSE ALARM"},
		{"harness failure of a clean run is not a false alarm", cleanRow("rolling-upgrade"), 2, nil, nil, "", Error, "error: exit code 2", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Judge(tt.row, tt.exit, tt.v, tt.st, tt.err)
			if o.Result != tt.result {
				t.Errorf("result %q, want %q (findings %v)", o.Result, tt.result, o.Findings)
			}
			if got := actualColumn(o); got != tt.actual {
				t.Errorf("actual %q, want %q", got, tt.actual)
			}
			if got := caughtColumn(o); got != tt.caughtC {
				t.Errorf("caught %q, want %q", got, tt.caughtC)
			}
		})
	}
}

func TestSummaryAndTables(t *testing.T) {
	lost := verdict(map[string]check.Status{check.CheckLedger: check.Failure}, map[check.Class]int64{check.ClassLost: 5}, nil)
	pass := verdict(nil, nil, nil)
	down := verdict(map[string]check.Status{check.CheckAvailability: check.Failure}, nil, map[string]float64{"client_visible_downtime_max_s": 20})
	rows := []Outcome{
		Judge(cleanRow("steady-state"), 0, pass, nil, ""),
		Judge(variantRow("silent-discard"), 1, lost, nil, ""),
		Judge(variantRow("double-delivery"), 0, pass, nil, ""),
		Judge(cleanRow("region-loss"), 1, down, nil, ""),
		Judge(variantRow("no-edge-health-checks"), 1, down, nil, ""),
		Judge(variantRow("replication-off"), 2, nil, nil, "heal: store-a not ready"),
	}
	s := Summarize(rows)
	if got, want := s.String(), "detected 2/4, false alarms 1/2"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if s.Errors != 1 || s.Perfect() {
		t.Errorf("errors %d perfect %v", s.Errors, s.Perfect())
	}
	var text bytes.Buffer
	if err := WriteText(&text, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(text.String(), "\n"), "\n")
	if lines[len(lines)-1] != "detected 2/4, false alarms 1/2" {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
	if !strings.Contains(lines[len(lines)-2], "harness errors: 1") {
		t.Errorf("no harness error line before the summary: %q", lines[len(lines)-2])
	}
	if !strings.HasPrefix(lines[0], "VARIANT") || !strings.Contains(text.String(), "double-delivery") || len(lines) != 1+len(rows)+2 {
		t.Errorf("table:\n%s", text.String())
	}
	wantRows := [][]string{
		{"reference", "steady-state", "none", "none", "clean"},
		{"silent-discard", "steady-state", "lost", "lost", "(5)", "yes"},
		{"double-delivery", "steady-state", "duplicated", "none", "no"},
		{"reference", "region-loss", "none", "client-visible-downtime", "(longest", "20.0s)", "FALSE", "ALARM"},
		{"no-edge-health-checks", "region-loss", "client-visible-downtime", "client-visible-downtime", "(longest", "20.0s)", "yes"},
		{"replication-off", "region-loss", "replica-missing", "error:", "heal:", "store-a", "not", "ready", "error"},
	}
	for i, want := range wantRows {
		if got := strings.Fields(lines[1+i]); !slices.Equal(got, want) {
			t.Errorf("row %d: %q, want %q", i+1, got, want)
		}
	}

	var md bytes.Buffer
	r := Report{ID: "d1", Outcomes: rows, Summary: s, Params: map[string]string{"duration": "40s"}}
	if err := WriteMarkdown(&md, r, func(id string) string { return "../" + id + "/index.html" }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| silent-discard | steady-state | lost | lost (5) | yes |", "[d1-silent-discard](../d1-silent-discard/index.html)",
		"| reference | region-loss | none | client-visible-downtime (longest 20.0s) | FALSE ALARM | the clean reference stack |", "duration `40s`"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if !strings.HasSuffix(md.String(), "\ndetected 2/4, false alarms 1/2\n") {
		t.Errorf("markdown does not end with the summary:\n%s", md.String())
	}
}

// TestReadRun reads a run folder as `mailchaos run` leaves it.
func TestReadRun(t *testing.T) {
	dir := t.TempDir()
	v := verdict(map[string]check.Status{check.CheckLedger: check.Failure}, map[check.Class]int64{check.ClassDuplicated: 7}, nil)
	sum := render.Summary{RunID: "d1-double-delivery", Scenarios: []render.ScenarioSummary{{Name: "steady-state", Verdict: v}}}
	f, err := os.Create(filepath.Join(dir, render.VerdictName))
	if err != nil {
		t.Fatal(err)
	}
	if err := render.WriteJSON(f, sum); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := flow.WriteStatus(dir, flow.Status{ExitCode: 1, Reason: "gate failed", Scenarios: []flow.ScenarioStatus{{Name: "steady-state", Outcome: flow.OutcomeGate}}}); err != nil {
		t.Fatal(err)
	}
	got, st, reason, err := ReadRun(dir, "steady-state")
	if err != nil || got == nil || st == nil || reason != "gate failed" {
		t.Fatalf("ReadRun: %v %v %q %v", got, st, reason, err)
	}
	if o := Judge(variantRow("double-delivery"), 1, got, st, ""); o.Result != Caught {
		t.Errorf("read back: %+v", o)
	}
	if got, _, _, err := ReadRun(dir, "mta-crash"); got != nil || err != nil {
		t.Errorf("a scenario the run did not judge: %v %v", got, err)
	}
	if _, _, _, err := ReadRun(t.TempDir(), "steady-state"); err == nil {
		t.Error("an empty folder read as a run")
	}
	// verdict.json is one JSON object: anything after it, or a number JSON
	// cannot hold, is an error, never a verdict.
	good, err := os.ReadFile(filepath.Join(dir, render.VerdictName))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"trailing }":      string(good) + "}",
		"a second object": string(good) + string(good),
		"trailing text":   string(good) + "garbage\n",
		"NaN":             strings.Replace(string(good), `"version": 0`, `"version": NaN`, 1),
		"past float64":    strings.Replace(string(good), `"version": 0`, `"version": 1e999`, 1),
	} {
		if body == string(good) {
			t.Fatalf("%s: the body did not change", name)
		}
		os.WriteFile(filepath.Join(dir, render.VerdictName), []byte(body), 0o644)
		if v, _, _, err := ReadRun(dir, "steady-state"); err == nil || v != nil {
			t.Errorf("%s: read %v, %v", name, v, err)
		}
	}
}

// TestCatalogMatchesFixtures keeps the catalog, the variant folders and the
// scenarios in step: every variant has a descriptor that loads, a README,
// a known scenario and a known finding class, and no folder is left out.
func TestCatalogMatchesFixtures(t *testing.T) {
	known := map[string]bool{}
	for _, s := range scenarios.Catalog() {
		known[s.Name] = true
	}
	classes := []string{Lost, Duplicated, Corrupted, Unexpected, Late, ReplicaMissing, IMAPInvariant, Downtime, DeliveryLatency, FailedOps, RawErrors}
	for _, v := range Catalog {
		t.Run(v.Name, func(t *testing.T) {
			d, err := harness.Load(v.Stack(defectsDir))
			if err != nil {
				t.Fatalf("descriptor: %v", err)
			}
			if d.Base == "" {
				t.Error("a variant should be an overlay of the reference (base:), not a copy")
			}
			if _, err := os.Stat(filepath.Join(defectsDir, v.Name, "README.md")); err != nil {
				t.Error("no README.md telling the mistake the variant models")
			}
			if !known[v.Scenario] {
				t.Errorf("unknown scenario %q", v.Scenario)
			}
			if !slices.Contains(classes, v.Expect) {
				t.Errorf("expected finding %q is not a finding class", v.Expect)
			}
		})
	}
	entries, err := os.ReadDir(defectsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && index(e.Name()) < 0 {
			t.Errorf("folder %s is not in the catalog", e.Name())
		}
	}
	if _, err := Select([]string{"silent-discard", "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Select of an unknown variant: %v", err)
	}
	sel, err := Select([]string{"replication-off", "silent-discard", "replication-off"})
	if err != nil || len(sel) != 2 || sel[0].Name != "silent-discard" {
		t.Errorf("Select keeps catalog order without repeats: %v %v", sel, err)
	}
	for _, c := range []struct {
		sc      string
		in, out time.Duration
	}{{"region-loss", 40 * time.Second, 70 * time.Second}, {"region-loss", 90 * time.Second, 90 * time.Second}, {"steady-state", 40 * time.Second, 40 * time.Second}} {
		if got := Duration(c.sc, c.in); got != c.out {
			t.Errorf("Duration(%s, %s) = %s, want %s", c.sc, c.in, got, c.out)
		}
	}
	if got := Scenarios(Catalog); !slices.Equal(got, []string{"steady-state", "mta-crash", "region-loss", "rolling-upgrade"}) {
		t.Errorf("scenarios %v", got)
	}
}
