package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/fixtures/stacks"
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/defects"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// fakeRunEnv makes the test binary play `mailchaos run`: it writes the run
// folder a scripted outcome calls for and exits with its code, so the
// defects runner is tested end to end without Docker.
const fakeRunEnv = "MAILCHAOS_TEST_FAKE_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(fakeRunEnv) != "" {
		os.Exit(fakeRun(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeRun scripts an outcome per stack: the reference passes steady-state
// and shows downtime in region-loss (a false alarm), silent-discard loses
// mail, double-delivery passes (a missed defect), no-edge-health-checks
// fails in the harness.
func fakeRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	p := flow.Defaults()
	p.Bind(fs)
	if len(args) == 0 || args[0] != "run" || fs.Parse(args[1:]) != nil {
		return 2
	}
	dir := filepath.Join(p.Out, p.RunID)
	v := &check.Verdict{Status: check.Success, Metrics: map[string]float64{}}
	for _, n := range []string{check.CheckLedger, check.CheckIMAP, check.CheckAvailability} {
		v.Checks = append(v.Checks, check.Result{Name: n, Status: check.Success})
	}
	st := flow.Status{RunID: p.RunID, ExitCode: flow.ExitPass, Scenarios: []flow.ScenarioStatus{{Name: p.Scenarios, Outcome: flow.OutcomePass}}}
	switch variant := filepath.Base(filepath.Dir(p.Stack)); {
	case variant == "reference" && p.Scenarios == "region-loss":
		v.Checks[2].Status = check.Failure
		v.Metrics["client_visible_downtime_max_s"] = 6
		st.ExitCode = flow.ExitGate
	case variant == "silent-discard":
		v.Checks[0].Status = check.Failure
		v.Ledger.Counts = map[check.Class]int64{check.ClassLost: 12}
		st.ExitCode = flow.ExitGate
	case variant == "no-edge-health-checks":
		st = flow.Status{RunID: p.RunID, ExitCode: flow.ExitHarness, Reason: "harness failed in region-loss: up: edge not ready"}
		_ = flow.WriteStatus(dir, st)
		return 2
	}
	if err := flow.WriteStatus(dir, st); err != nil {
		return 2
	}
	f, err := os.Create(filepath.Join(dir, render.VerdictName))
	if err != nil {
		return 2
	}
	defer f.Close()
	if render.WriteJSON(f, render.Summary{RunID: p.RunID, Scenarios: []render.ScenarioSummary{{Name: p.Scenarios, Verdict: v}}}) != nil {
		return 2
	}
	return st.ExitCode
}

func TestDefectsRunner(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeRunEnv, "1")
	out := t.TempDir()
	vs, err := defects.Select([]string{"silent-discard", "double-delivery", "no-edge-health-checks"})
	if err != nil {
		t.Fatal(err)
	}
	o := defectsOptions{stacks: "../../../fixtures/stacks/defects", reference: "../../../fixtures/stacks/reference/stack.yaml",
		out: out, id: "t1", duration: 40 * time.Second, steady: 5 * time.Second, converge: time.Minute, timeout: time.Minute,
		rate: 10, users: 50, seed: 7}
	if err := o.prepare(vs); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	var stdout bytes.Buffer
	err = runDefects(context.Background(), o, vs, self, &stdout)
	t.Logf("stdout:\n%s", stdout.String())
	if err == nil || strings.Contains(err.Error(), "exit") {
		t.Errorf("a harness error in one run must fail the whole with code 2, got %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if last := lines[len(lines)-1]; last != "detected 1/3, false alarms 1/2" {
		t.Errorf("last line %q", last)
	}
	for _, want := range []string{"duration 40s (region-loss: 1m10s)", "[1/5] reference on steady-state (run t1-ref-steady-state)", "[4/5] reference on region-loss", "lost (12)", "error: harness failed in region-loss: up: edge not ready", "FALSE ALARM"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	dir := filepath.Join(out, "defects-t1")
	var rep defects.Report
	b, err := os.ReadFile(filepath.Join(dir, "defects.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	results := []string{}
	for _, r := range rep.Outcomes {
		results = append(results, r.Variant+"/"+r.Scenario+"="+r.Result)
	}
	if got, want := strings.Join(results, " "), "reference/steady-state=clean silent-discard/steady-state=caught double-delivery/steady-state=missed reference/region-loss=false-alarm no-edge-health-checks/region-loss=error"; got != want {
		t.Errorf("rows %s\nwant %s", got, want)
	}
	if rep.Params["seed"] != "7" || rep.Summary.Errors != 1 {
		t.Errorf("params %v summary %+v", rep.Params, rep.Summary)
	}
	md, err := os.ReadFile(filepath.Join(dir, "defects.md"))
	if err != nil || !strings.HasSuffix(string(md), "detected 1/3, false alarms 1/2\n") || !strings.Contains(string(md), "(../t1-silent-discard/index.html)") {
		t.Errorf("defects.md: %v\n%s", err, md)
	}
	if target, err := os.Readlink(filepath.Join(out, "latest-defects")); err != nil || target != "defects-t1" {
		t.Errorf("latest-defects -> %q (%v)", target, err)
	}
	if log, err := os.ReadFile(filepath.Join(dir, "logs", "t1-ref-region-loss.log")); err != nil || !strings.Contains(string(log), "--duration 1m10s") {
		t.Errorf("region-loss runs at its minimum duration: %v %s", err, log)
	}
	if rep.Params["duration of region-loss"] != "1m10s" {
		t.Errorf("params %v", rep.Params)
	}
	if log, err := os.ReadFile(filepath.Join(dir, "logs", "t1-silent-discard.log")); err != nil || !strings.Contains(string(log), "--stack ../../../fixtures/stacks/defects/silent-discard/stack.yaml --scenario steady-state --run-id t1-silent-discard") {
		t.Errorf("run log: %v %s", err, log)
	}
	// The same id again would mix two sessions in one folder.
	if err := o.prepare(vs); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("a reused id: %v", err)
	}
}

// A clean table is exit 0; a missed defect or a false alarm is exit 1.
func TestDefectsExitCodes(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeRunEnv, "1")
	for _, c := range []struct {
		variants string
		noClean  bool
		code     int
	}{
		{"silent-discard", false, 0},
		{"silent-discard", true, 0},
		{"double-delivery", true, 1},
		{"replication-off", false, 1}, // the reference's region-loss run is a false alarm here
	} {
		vs, _ := defects.Select([]string{c.variants})
		o := defectsOptions{stacks: "../../../fixtures/stacks/defects", reference: "../../../fixtures/stacks/reference/stack.yaml",
			out: t.TempDir(), id: "t2", noClean: c.noClean, duration: 40 * time.Second, steady: 5 * time.Second, converge: time.Minute, timeout: time.Minute, rate: 10, users: 50, seed: 7}
		var stdout bytes.Buffer
		err := runDefects(context.Background(), o, vs, self, &stdout)
		if got := exitCodeOf(err); got != c.code {
			t.Errorf("%s (no-clean %v): exit %d, want %d (%v)\n%s", c.variants, c.noClean, got, c.code, err, stdout.String())
		}
	}
}

// exitCodeOf is the exit code main gives a subcommand's error.
func exitCodeOf(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 2
}

// runIDOK is what flow.Params.Validate accepts for --run-id.
var runIDOK = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)

func TestDefectsPlanAndIDs(t *testing.T) {
	o := defectsOptions{stacks: "s", reference: "r.yaml", id: "d1123-140405-abcde"}
	runs := o.plan(defects.Catalog)
	if len(runs) != len(defects.Catalog)+4 {
		t.Fatalf("%d runs", len(runs))
	}
	// Clean run of each scenario first, then its variants; every run id fits --run-id.
	seen := map[string]bool{}
	for _, r := range runs {
		if !seen[r.row.Scenario] && r.row.Variant != defects.Reference {
			t.Errorf("%s runs before the clean run of %s", r.row.Variant, r.row.Scenario)
		}
		seen[r.row.Scenario] = true
		if !runIDOK.MatchString(r.row.RunID) {
			t.Errorf("run id %s is not one --run-id accepts", r.row.RunID)
		}
	}
	bad := defectsOptions{stacks: "../../../fixtures/stacks/defects", reference: "../../../fixtures/stacks/reference/stack.yaml", out: t.TempDir(), id: "Bad_ID"}
	if err := bad.prepare(defects.Catalog[:1]); err == nil || !strings.Contains(err.Error(), "--id") {
		t.Errorf("bad id accepted: %v", err)
	}
	missing := defectsOptions{stacks: t.TempDir(), reference: "../../../fixtures/stacks/reference/stack.yaml", out: t.TempDir()}
	if err := missing.prepare(defects.Catalog[:1]); err == nil || !strings.Contains(err.Error(), "silent-discard") {
		t.Errorf("a missing variant descriptor accepted: %v", err)
	}
}

// The default stacks are the ones embedded in the binary: every variant
// and the reference load from a folder that is not the checkout.
func TestDefectsBuiltinStacks(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out := t.TempDir()
	t.Chdir(t.TempDir())
	o := defectsOptions{stacks: stacks.Defects, reference: stacks.Reference, out: out}
	if err := o.prepare(defects.Catalog); err != nil {
		t.Fatal(err)
	}
}

// The flags every run is given are checked once, before the first run:
// values each run would refuse, NaN and Inf among them.
func TestDefectsCheckRun(t *testing.T) {
	ok := defectsOptions{out: "out", duration: 40 * time.Second, steady: 5 * time.Second, converge: time.Minute,
		timeout: time.Minute, rate: 10, users: 50}
	if err := ok.checkRun(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	cases := []struct {
		name string
		set  func(o *defectsOptions)
		want string
	}{
		{"rate NaN", func(o *defectsOptions) { o.rate = math.NaN() }, "--rate NaN"},
		{"rate +Inf", func(o *defectsOptions) { o.rate = math.Inf(1) }, "--rate +Inf"},
		{"rate 0", func(o *defectsOptions) { o.rate = 0 }, "--rate 0"},
		{"duration 0", func(o *defectsOptions) { o.duration = 0 }, "--duration 0s"},
		{"steady past an hour", func(o *defectsOptions) { o.steady = 2 * time.Hour }, "--steady 2h0m0s"},
		{"converge 0", func(o *defectsOptions) { o.converge = 0 }, "--converge 0s"},
		{"no users", func(o *defectsOptions) { o.users = 0 }, "--users 0"},
		{"negative seed", func(o *defectsOptions) { o.seed = -1 }, "--seed -1"},
		{"run timeout 0", func(o *defectsOptions) { o.timeout = 0 }, "--run-timeout 0s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.set(&o)
			if err := o.checkRun(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error with %q", err, tc.want)
			}
		})
	}
}
