package scenarios

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// How a run stops before its end. A first SIGINT or SIGTERM, and --timeout,
// are Ginkgo's to handle: it cancels the running phase and runs the
// cleanup nodes (heal every fault, tear the stack down saving its logs,
// judge the history recorded so far) and the report node (status.json,
// the reports, the bundle), so the run ends in order with exit code 2. A
// second signal removes the stacks at once (harness.DeferInterrupts) and
// abandon writes status.json; the watchdog, for a run still going well
// past --timeout (Ginkgo itself stuck), does what the cleanup and report
// nodes would, then exits.

// active are the scenarios whose stack may exist: begun, not yet
// finished; begun are all the scenarios begun, in order.
var active struct {
	mu    sync.Mutex
	runs  []*flow.Run
	begun []*flow.Run
	// finishing holds, per finish call in progress, a channel closed when
	// it ends, so the watchdog can wait for a cleanup that Ginkgo started
	// before it got stuck.
	finishing map[*flow.Run]chan struct{}
}

// abandoned is set once the run is being ended outside Ginkgo (second
// signal, watchdog): the report node must not write over what they wrote.
var abandoned atomic.Bool

// begin records r as active.
func begin(r *flow.Run) {
	active.mu.Lock()
	defer active.mu.Unlock()
	active.runs = append(active.runs, r)
	active.begun = append(active.begun, r)
}

// finish tears r's stack down (saving its logs), judges what it recorded
// if it never reached its check, adds it to the report and forgets it. It
// is the scenario's last cleanup; the watchdog calls it for scenarios that
// did not get there.
func finish(ctx context.Context, r *flow.Run) error {
	active.mu.Lock()
	i := indexOf(active.runs, r)
	done := make(chan struct{})
	if i >= 0 {
		active.runs = append(active.runs[:i], active.runs[i+1:]...)
		if active.finishing == nil {
			active.finishing = map[*flow.Run]chan struct{}{}
		}
		active.finishing[r] = done
	}
	active.mu.Unlock()
	if i < 0 {
		return nil // finished already (by the watchdog, or twice)
	}
	defer func() {
		active.mu.Lock()
		delete(active.finishing, r)
		active.mu.Unlock()
		close(done)
	}()
	noteInterrupt(r)
	err := r.Teardown(ctx)
	r.JudgePartial(ctx)
	record(r)
	return err
}

func indexOf(runs []*flow.Run, r *flow.Run) int {
	for i, x := range runs {
		if x == r {
			return i
		}
	}
	return -1
}

// activeRuns returns the active scenarios.
func activeRuns() []*flow.Run {
	active.mu.Lock()
	defer active.mu.Unlock()
	return append([]*flow.Run(nil), active.runs...)
}

// begunRuns returns every scenario begun.
func begunRuns() []*flow.Run {
	active.mu.Lock()
	defer active.mu.Unlock()
	return append([]*flow.Run(nil), active.begun...)
}

// interrupted names what stopped the run early: the first signal
// ("SIGINT", "SIGTERM"), or "--timeout <d>" once the run outlived it; ""
// when nothing did.
func interrupted() string {
	switch sig := harness.Interrupted(); {
	case sig != nil:
		return signalName(sig)
	}
	suite.mu.Lock()
	deadline, timeout := suite.deadline, suite.params.Timeout
	suite.mu.Unlock()
	if !deadline.IsZero() && time.Now().After(deadline) {
		return "--timeout " + timeout.String()
	}
	return ""
}

func signalName(sig os.Signal) string {
	switch sig.String() {
	case "interrupt":
		return "SIGINT"
	case "terminated":
		return "SIGTERM"
	}
	return sig.String()
}

// interruptReason says where the run was stopped: "interrupted at
// <scenario>/<phase> (<cause>)"; the phase is the one started last.
func interruptReason(cause string, r *flow.Run) string {
	if r == nil {
		return fmt.Sprintf("interrupted before any scenario started (%s)", cause)
	}
	ph := r.Phase()
	if ph == "" {
		ph = "start"
	}
	return fmt.Sprintf("interrupted at %s/%s (%s)", r.S.Name, ph, cause)
}

// lastStarted is the scenario that started last among runs (nil: none).
func lastStarted(runs []*flow.Run) *flow.Run {
	var last *flow.Run
	for _, r := range runs {
		if last == nil || r.Started.After(last.Started) {
			last = r
		}
	}
	return last
}

// markInterrupted makes the status of an interrupted run say so: exit code
// 2, reason ("interrupted at <scenario>/<phase> (<cause>)") first, then
// whatever else the classification found. A gate that failed before the
// interrupt is still in the reason, but an interrupted run is never exit
// code 1: what came after the interrupt was not judged at all.
func markInterrupted(st *flow.Status, reason string) {
	if st.Reason != "" && st.Outcome != flow.OutcomePass {
		reason += "; " + st.Reason
	}
	st.ExitCode, st.Outcome, st.Reason = flow.ExitHarness, flow.OutcomeHarness, reason
}

// interruptedAt remembers, per scenario, where the interrupt found it:
// set when the interrupt is first seen for it (its cleanup), read by
// record for the report.
var interruptedAt sync.Map // *flow.Run -> string

// runInterrupt is the reason of the run's interrupt, "" when it was not
// interrupted: where the interrupt found the scenario that started last
// among those it found, or, when it found none running, the last scenario
// started.
func runInterrupt(runs []*flow.Run) string {
	cause := interrupted()
	if cause == "" {
		return ""
	}
	var found []*flow.Run
	for _, r := range runs {
		if _, ok := interruptedAt.Load(r); ok {
			found = append(found, r)
		}
	}
	if r := lastStarted(found); r != nil {
		reason, _ := interruptedAt.Load(r)
		return reason.(string)
	}
	return interruptReason(cause, lastStarted(runs))
}

// noteInterrupt records where r was when the run was interrupted (once).
func noteInterrupt(r *flow.Run) {
	if cause := interrupted(); cause != "" {
		interruptedAt.LoadOrStore(r, interruptReason(cause, r))
	}
}

// abandon is harness.DeferInterrupts' hook for a second signal: the stacks
// are already removed; write status.json (exit code 130) so CI and the
// next reader see what happened, in a moment, and nothing else.
func abandon(sig os.Signal) {
	if !abandoned.CompareAndSwap(false, true) {
		return
	}
	suite.mu.Lock()
	p := suite.params
	suite.mu.Unlock()
	st := harnessFailed(p, fmt.Sprintf("%s, then %s again: the stacks were removed at once; no logs, no report", runInterrupt(begunRuns()), signalName(sig)))
	st.ExitCode = flow.ExitInterrupted
	conclude(p, st, false)
}

// watchdogAbort ends a run still going long after --timeout, when Ginkgo
// itself is stuck: what the cleanup and report nodes would do, each step
// bounded, then exit code 2. Scenarios still active are healed and torn
// down (saving logs), judged on what they recorded, and reported; any
// stack left live anywhere in the process is torn down.
func watchdogAbort(p flow.Params, hung time.Duration) {
	if !abandoned.CompareAndSwap(false, true) {
		return
	}
	runs := activeRuns()
	where := lastStarted(runs)
	reason := fmt.Sprintf("run hung: still running %s after --timeout %s; %s", hung, p.Timeout, interruptReason("watchdog", where))
	fmt.Fprintln(os.Stderr, "mailchaos: "+reason+": healing, tearing down, reporting")
	ctx, cancel := context.WithTimeout(context.Background(), flow.HealTimeout+flow.TeardownTimeout+flow.CheckTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			interruptedAt.LoadOrStore(r, interruptReason("watchdog", r))
			if err := r.HealForCleanup(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "mailchaos: %s: heal: %v\n", r.S.Name, err)
			}
			if err := finish(ctx, r); err != nil {
				fmt.Fprintf(os.Stderr, "mailchaos: %s: %v\n", r.S.Name, err)
			}
		}()
	}
	wg.Wait()
	// A scenario whose cleanup Ginkgo started is finishing: let it, so
	// that its logs and its partial verdict are in the report.
	active.mu.Lock()
	var inProgress []chan struct{}
	for _, done := range active.finishing {
		inProgress = append(inProgress, done)
	}
	active.mu.Unlock()
	for _, done := range inProgress {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	harness.TeardownAll(ctx)
	st := harnessFailed(p, reason)
	conclude(p, st, false)
	// The reports may be what hangs: give them a bound of their own.
	done := make(chan struct{})
	go func() { defer close(done); conclude(p, st, true) }()
	select {
	case <-done:
	case <-time.After(flow.CheckTimeout):
		fmt.Fprintln(os.Stderr, "mailchaos: run reports: not written within", flow.CheckTimeout)
	}
	fmt.Fprintln(os.Stderr, "mailchaos: "+reason)
	os.Exit(flow.ExitHarness)
}

// The test hooks (MAILCHAOS_TEST_HOOK, comma-separated) make the rare
// ways a run ends happen on demand, for the abort test (make abort-test):
//
//	panic@<phase>  panic at the start of a phase (up, steady, load, heal,
//	               converge, final-read, check, teardown)
//	hang@report    the report node never returns, so the watchdog must act
//	watchdog=<d>   the watchdog acts <d> after --timeout (default: two
//	               grace periods and TeardownAllowance)
const testHookEnv = "MAILCHAOS_TEST_HOOK"

// testHooks parses MAILCHAOS_TEST_HOOK once.
var testHooks = sync.OnceValue(func() map[string]string {
	hooks := map[string]string{}
	for _, h := range strings.Split(os.Getenv(testHookEnv), ",") {
		if h = strings.TrimSpace(h); h != "" {
			k, v, _ := strings.Cut(h, "=")
			hooks[k] = v
		}
	}
	return hooks
})

// testHook acts on hook point (e.g. "panic@load") when the environment
// asks for it.
func testHook(point string) {
	if _, ok := testHooks()[point]; !ok {
		return
	}
	switch {
	case strings.HasPrefix(point, "panic@"):
		panic(fmt.Sprintf("%s=%s: injected panic", testHookEnv, point))
	case strings.HasPrefix(point, "hang@"):
		fmt.Fprintf(os.Stderr, "mailchaos: %s=%s: hanging\n", testHookEnv, point)
		select {}
	}
}

// watchdogAfter is how long past --timeout the watchdog waits: the test
// hook's watchdog=<d>, or dflt.
func watchdogAfter(dflt time.Duration) time.Duration {
	if v, ok := testHooks()["watchdog"]; ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return dflt
}
