// Package scenarios is the mailchaos scenario suite: Ginkgo specs that
// bring a mail stack up, hold a steady state, break it on a fault timeline
// while traffic flows, heal it, read every mailbox and judge the recorded
// history with the checkers, asserting the verdict with the matchers of
// scenarios/matchers.
//
// One file per scenario; the phases they share are in scenarios/flow. The
// suite runs in two ways: `go test ./scenarios` (the smoke scenario by
// default) and `mailchaos run` (any label filter, with the exit codes CI
// gates on). Run the suite with RunSuite; the package has no other API.
package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/flow"
	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
)

// suite is the state every spec of the run shares. It is set by RunSuite
// before Ginkgo builds the spec tree, and read by the scenarios' bodies.
var suite struct {
	mu       sync.Mutex
	params   flow.Params
	progress *flow.Progress
	status   *flow.Status
	catalog  []flow.Scenario
	// start is when the run started; deadline when --timeout elapses
	// (zero before the run starts).
	start, deadline time.Time
}

// Catalog returns every scenario of the suite, in definition order.
func Catalog() []flow.Scenario {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	return append([]flow.Scenario(nil), suite.catalog...)
}

// Prepare fills in what a run's parameters leave to the harness (run id,
// seed) and validates them.
func Prepare(p flow.Params) (flow.Params, error) {
	if p.RunID == "" {
		p.RunID = harness.NewRunID()
	}
	if p.Seed == 0 {
		p.Seed = rand.Int64N(1<<53) + 1
	}
	err := p.Validate()
	known := map[string]bool{}
	for _, s := range Catalog() {
		known[s.Name] = true
	}
	for _, n := range p.ScenarioNames() {
		if !known[n] {
			err = errors.Join(err, fmt.Errorf("--scenario %q: no such scenario (mailchaos run --list)", n))
		}
	}
	return p, err
}

// RunSuite runs the scenarios p.Label selects and returns the run's status
// (also written to <run dir>/status.json). t receives Ginkgo's pass/fail;
// suiteCfg and reporterCfg are Ginkgo's configuration, whose label filter
// and timeout RunSuite sets from p. RunSuite may be called once per process.
func RunSuite(t GinkgoTestingT, p flow.Params, suiteCfg types.SuiteConfig, reporterCfg types.ReporterConfig) flow.Status {
	suite.mu.Lock()
	suite.params = p
	suite.progress = flow.NewProgress(os.Stderr, p.Progress)
	suite.mu.Unlock()

	if err := os.MkdirAll(p.RunDir(), 0o755); err != nil {
		st := harnessFailed(p, "create run folder: "+err.Error())
		return st
	}
	fmt.Fprintf(os.Stderr, "mailchaos run %s: seed %d, label %q, stack %s, duration %s, rate %g/s, users %d, out %s\n",
		p.RunID, p.Seed, p.Label, p.Stack, p.Duration, p.Rate, p.Users, p.RunDir())

	suiteCfg.LabelFilter = p.Label
	for _, n := range p.ScenarioNames() {
		// Ginkgo matches focus against "<suite description> <spec text>".
		suiteCfg.FocusStrings = append(suiteCfg.FocusStrings, "^"+regexp.QuoteMeta(suiteDescription+" "+n+" "))
	}
	suiteCfg.Timeout = p.Timeout
	suiteCfg.RandomSeed = p.Seed
	suiteCfg.RandomizeAllSpecs = false

	// The first signal is Ginkgo's: it cancels the running phase and runs
	// the cleanup and report nodes, so the run ends in order (exit code
	// 2). A second one removes the stacks at once (see abandon).
	harness.DeferInterrupts(abandon)
	suite.mu.Lock()
	suite.start = time.Now()
	suite.deadline = suite.start.Add(p.Timeout)
	suite.mu.Unlock()
	// A run that outlives its timeout and Ginkgo's own interrupt by this
	// much is hung: end it as the cleanup and report nodes would have,
	// and exit 2, rather than never answering CI.
	after := watchdogAfter(2*suiteCfg.GracePeriod + TeardownAllowance)
	watchdog := time.AfterFunc(p.Timeout+after, func() { watchdogAbort(p, after) })
	defer watchdog.Stop()

	RunSpecs(t, suiteDescription, suiteCfg, reporterCfg)

	// A second signal came: its handler removes the stacks and ends the
	// process with its own exit code; status.json says so already.
	harness.WaitAbandoned()

	// A cleanup node that outlived its node timeout was left running by
	// Ginkgo: wait for any teardown still in progress, and tear down any
	// stack still live, before the process may exit.
	ctx, cancel := context.WithTimeout(context.Background(), flow.TeardownTimeout)
	if n := harness.TeardownAll(ctx); n > 0 {
		fmt.Fprintf(os.Stderr, "mailchaos: tore down %d stack(s) still live after the suite\n", n)
	}
	cancel()

	suite.mu.Lock()
	status := suite.status
	suite.mu.Unlock()
	if status == nil {
		return conclude(p, harnessFailed(p, "the suite ended without a status (report node did not run)"), false)
	}
	return *status
}

const suiteDescription = "mailchaos scenarios"

// TeardownAllowance is how long past --timeout a run may take to tear its
// stacks down before the watchdog declares it hung.
const TeardownAllowance = 5 * time.Minute

func harnessFailed(p flow.Params, reason string) flow.Status {
	now := time.Now()
	suite.mu.Lock()
	start := suite.start
	suite.mu.Unlock()
	if start.IsZero() {
		start = now
	}
	return flow.Status{RunID: p.RunID, Seed: p.Seed, Label: p.Label, ExitCode: flow.ExitHarness,
		Outcome: flow.OutcomeHarness, Reason: reason, Start: start, End: now}
}

// The last node of every run: classify the outcome, write the run-level
// reports and the status file, and point out/latest at the run (or, in a
// part of a parallel run, the part file the parent merges).
var _ = ReportAfterSuite("mailchaos status", func(rep Report) {
	testHook("hang@report")
	if abandoned.Load() {
		return // a second signal or the watchdog ended the run
	}
	// A scenario whose last cleanup did not get to finish it (the cleanup
	// panicked first) is finished here, so its stack goes and its logs
	// and partial verdict are in the report.
	if runs := activeRuns(); len(runs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), flow.TeardownTimeout+flow.CheckTimeout)
		for _, r := range runs {
			if err := finish(ctx, r); err != nil {
				fmt.Fprintf(os.Stderr, "mailchaos: %s: %v\n", r.S.Name, err)
			}
		}
		cancel()
	}
	suite.mu.Lock()
	p := suite.params
	runs := append([]*flow.Run(nil), results.facts...)
	suite.mu.Unlock()
	st := flow.Classify(rep)
	st.RunID, st.Seed, st.Label = p.RunID, p.Seed, p.Label
	if reason := runInterrupt(runs); reason != "" {
		markInterrupted(&st, reason)
	}
	if abandoned.Load() {
		return
	}
	st = conclude(p, st, true)
	suite.mu.Lock()
	suite.status = &st
	suite.mu.Unlock()
})

// linkLatest points <out>/latest at the run folder when the reports could
// not be written (render.Write does it otherwise).
func linkLatest(p flow.Params) error { return render.UpdateLatest(p.Out, p.RunID) }
