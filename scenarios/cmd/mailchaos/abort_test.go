package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// The abort test (make abort-test) runs the smoke scenario again and again
// with the built mailchaos binary, stopping each run at a random moment in
// one of the ways a run can end early, and checks that each left nothing
// on the engine and, where it could, said what happened. It is Docker
// heavy (a whole stack per run) and off by default: MAILCHAOS_ABORT_RUNS
// sets the number of runs, MAILCHAOS_BIN the binary, MAILCHAOS_ABORT_SEED
// the seed of the random moments, MAILCHAOS_ABORT_PREFIX the run ids'
// prefix, MAILCHAOS_ABORT_OUT the folder of the runs and of the table
// (abort-test.md).

// abortMode is one way to stop a run.
type abortMode string

const (
	modeSIGINT   abortMode = "SIGINT"
	modeSIGTERM  abortMode = "SIGTERM"
	modeSIGKILL  abortMode = "SIGKILL" // then mailchaos clean --run <id>
	modePanic    abortMode = "panic"   // MAILCHAOS_TEST_HOOK=panic@<phase>
	modeTimeout  abortMode = "timeout" // a tiny --timeout: Ginkgo's suite timeout
	modeWatchdog abortMode = "watchdog"
)

// modes cycles so that 20 runs stop 4 times by each signal and by a panic,
// twice by --timeout and twice by the watchdog.
var modes = []abortMode{modeSIGINT, modeSIGTERM, modeSIGKILL, modePanic, modeTimeout,
	modeSIGINT, modeSIGTERM, modeSIGKILL, modePanic, modeWatchdog}

var panicPhases = []string{"up", "steady", "load", "heal", "converge", "final-read", "check", "teardown"}

// abortRun is one run of the test and what it left.
type abortRun struct {
	n        int
	id       string
	mode     abortMode
	when     string // the moment: a delay, a phase, a --timeout
	exit     int    // the process's exit code (-1: killed by the signal)
	status   *flow.Status
	report   bool   // index.html and bundle.tar.gz written, index names the scenario
	left     string // containers/networks/volumes left after the run (and, for SIGKILL, the clean)
	cleanOut string
	took     time.Duration
	problems []string
}

func TestAbort(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("MAILCHAOS_ABORT_RUNS"))
	if runs <= 0 {
		t.Skip("set MAILCHAOS_ABORT_RUNS (make abort-test): Docker heavy, a stack per run")
	}
	bin := os.Getenv("MAILCHAOS_BIN")
	if bin == "" {
		bin = "../../../bin/mailchaos"
	}
	bin, _ = filepath.Abs(bin)
	seed, _ := strconv.ParseUint(os.Getenv("MAILCHAOS_ABORT_SEED"), 10, 64)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	prefix := os.Getenv("MAILCHAOS_ABORT_PREFIX")
	if prefix == "" {
		prefix = "abort"
	}
	out := os.Getenv("MAILCHAOS_ABORT_OUT")
	if out == "" {
		out = t.TempDir()
	}
	rng := rand.New(rand.NewPCG(seed, 15))
	t.Logf("abort test: %d runs, seed %d, binary %s, out %s", runs, seed, bin, out)
	var results []abortRun
	for i := 1; i <= runs; i++ {
		r := abortRun{n: i, id: fmt.Sprintf("%s-%d-%02d", prefix, seed%100000, i), mode: modes[(i-1)%len(modes)]}
		runAbort(t, bin, out, rng, &r)
		t.Logf("run %d: %s", i, r.row())
		results = append(results, r)
	}
	table := abortTable(seed, results)
	t.Log("\n" + table)
	if err := os.WriteFile(filepath.Join(out, "abort-test.md"), []byte(table), 0o644); err != nil {
		t.Error(err)
	}
	for _, r := range results {
		for _, p := range r.problems {
			t.Errorf("run %d (%s %s): %s", r.n, r.mode, r.when, p)
		}
	}
}

// runAbort starts one run, stops it as r.mode says, and checks it.
func runAbort(t *testing.T, bin, out string, rng *rand.Rand, r *abortRun) {
	args := []string{"run", "--scenario", "steady-state", "--duration", "15s", "--steady", "3s",
		"--out", out, "--run-id", r.id, "--progress", "log"}
	env := os.Environ()
	var delay time.Duration
	switch r.mode {
	case modePanic:
		ph := panicPhases[rng.IntN(len(panicPhases))]
		r.when = "panic@" + ph
		env = append(env, "MAILCHAOS_TEST_HOOK=panic@"+ph)
	case modeTimeout, modeWatchdog:
		to := time.Duration(5+rng.IntN(56)) * time.Second
		r.when = "--timeout " + to.String()
		args = append(args, "--timeout", to.String())
		if r.mode == modeWatchdog {
			// The report node hangs, so Ginkgo never returns: the
			// watchdog, 5 s after --timeout, must end the run.
			r.when += ", report hangs"
			env = append(env, "MAILCHAOS_TEST_HOOK=hang@report,watchdog=5s")
		}
	default:
		delay = time.Duration(1000+rng.IntN(61000)) * time.Millisecond
		r.when = "at " + delay.Round(100*time.Millisecond).String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	logf, err := os.Create(filepath.Join(out, r.id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitErr error
	if delay > 0 {
		select {
		case waitErr = <-exited:
			r.problems = append(r.problems, "ended before its signal")
			exited = nil
		case <-time.After(delay):
			sig := map[abortMode]syscall.Signal{modeSIGINT: syscall.SIGINT, modeSIGTERM: syscall.SIGTERM, modeSIGKILL: syscall.SIGKILL}[r.mode]
			_ = cmd.Process.Signal(sig)
		}
	}
	if exited != nil {
		waitErr = <-exited
	}
	r.took = time.Since(start)
	r.exit = 0
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		r.exit = ee.ExitCode()
	} else if waitErr != nil {
		r.problems = append(r.problems, "wait: "+waitErr.Error())
	}
	if ctx.Err() != nil {
		r.problems = append(r.problems, "still running after 12 minutes")
	}
	if r.mode == modeSIGKILL {
		// Nothing ran its cleanup: the owner is gone, so clean --run
		// (what a bare clean does for every such run) removes it all.
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cout, err := exec.CommandContext(cctx, bin, "clean", "--run", r.id).CombinedOutput()
		ccancel()
		r.cleanOut = strings.TrimSpace(string(cout))
		if err != nil {
			r.problems = append(r.problems, fmt.Sprintf("clean --run %s: %v: %s", r.id, err, cout))
		}
	}
	r.left = leftOf(t, r.id)
	if r.left != "0/0/0" {
		r.problems = append(r.problems, "left on the engine (containers/networks/volumes): "+r.left)
	}
	r.check(filepath.Join(out, r.id))
}

// check judges what the run wrote against what its mode must leave.
func (r *abortRun) check(dir string) {
	if st, err := flow.ReadStatus(dir); err == nil {
		r.status = &st
	}
	idx, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	_, berr := os.Stat(filepath.Join(dir, "bundle.tar.gz"))
	r.report = berr == nil && strings.Contains(string(idx), "<html") && strings.Contains(string(idx), "steady-state")
	if r.mode == modeSIGKILL {
		return // killed: nothing could be written
	}
	switch {
	case r.exit == 0 && r.status != nil && r.status.ExitCode == 0:
		// It ended before the stop came (a panic hook on a phase it
		// passed, cannot happen; a late signal is reported above).
		r.problems = append(r.problems, "passed: the stop never came")
		return
	case r.exit != flow.ExitHarness:
		r.problems = append(r.problems, fmt.Sprintf("exit code %d, want 2", r.exit))
	}
	if r.status == nil {
		r.problems = append(r.problems, "no status.json")
		return
	}
	if r.status.ExitCode != flow.ExitHarness {
		r.problems = append(r.problems, fmt.Sprintf("status.json exit_code %d, want 2", r.status.ExitCode))
	}
	want := map[abortMode]string{modeSIGINT: "(SIGINT)", modeSIGTERM: "(SIGTERM)", modeTimeout: "(--timeout", modeWatchdog: "run hung"}[r.mode]
	if r.mode == modePanic {
		want = "harness failed"
	}
	if !strings.Contains(r.status.Reason, want) {
		r.problems = append(r.problems, fmt.Sprintf("status.json reason %q lacks %q", r.status.Reason, want))
	}
	if !r.report {
		r.problems = append(r.problems, "no readable report (index.html naming the scenario, bundle.tar.gz)")
	}
}

// leftOf counts, as "containers/networks/volumes", what the engine still
// holds of run id and its scenarios' stacks.
func leftOf(t *testing.T, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runs, err := harness.ListRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var c, n, v int
	for _, r := range runs {
		if r.ID == id || r.Group == id || strings.HasPrefix(r.ID, id+"-") {
			c, n, v = c+r.Containers, n+r.Networks, v+r.Volumes
		}
	}
	return fmt.Sprintf("%d/%d/%d", c, n, v)
}

func (r abortRun) statusCell() string {
	if r.status == nil {
		return "none"
	}
	reason := r.status.Reason
	if len(reason) > 90 {
		reason = reason[:90] + "..."
	}
	return fmt.Sprintf("%d: %s", r.status.ExitCode, reason)
}

func (r abortRun) row() string {
	ok := "ok"
	if len(r.problems) > 0 {
		ok = strings.Join(r.problems, "; ")
	}
	report := "-"
	if r.report {
		report = "yes"
	}
	return fmt.Sprintf("| %d | %s | %s | %d | %s | %s | %s | %s | %s |", r.n, r.mode, r.when, r.exit, r.statusCell(), report,
		r.left, r.took.Round(time.Second), ok)
}

// abortTable is the results as a Markdown table.
func abortTable(seed uint64, runs []abortRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "abort test, seed %d: %d runs of steady-state (--duration 15s --steady 3s)\n\n", seed, len(runs))
	b.WriteString("| run | stop | when | exit | status.json | report | left c/n/v | took | result |\n|---|---|---|---|---|---|---|---|---|\n")
	failed := 0
	for _, r := range runs {
		b.WriteString(r.row() + "\n")
		if len(r.problems) > 0 {
			failed++
		}
	}
	fmt.Fprintf(&b, "\n%d of %d runs as they must be\n", len(runs)-failed, len(runs))
	return b.String()
}
