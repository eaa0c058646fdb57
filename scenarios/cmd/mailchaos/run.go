package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/harness"

	"github.com/mailchaos/mailchaos/scenarios"
	"github.com/mailchaos/mailchaos/scenarios/flow"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
)

func init() {
	register("run", "run scenarios against a stack; exit 0 pass, 1 a gate failed, 2 the harness failed", runCmd)
}

// ginkgoT receives Ginkgo's pass/fail outside `go test`; the exit code comes
// from the status the suite classifies, not from it.
type ginkgoT struct{ failed bool }

func (t *ginkgoT) Fail() { t.failed = true }

func runCmd(ctx context.Context, args []string) error {
	p := flow.Defaults()
	p.Label = flow.LabelNightly
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	p.Bind(fs)
	verbose := fs.Bool("v", false, "verbose Ginkgo output (every spec and its log as it runs)")
	list := fs.Bool("list", false, "list the scenarios with their labels and whether the stack (--stack) can run each, and exit")
	cleanStale := fs.Bool("clean-stale", false, "first remove the runs on this engine whose owner process is gone (what a killed run left; as 'mailchaos clean')")
	fs.IntVar(&p.Part, partFlag, 0, "") // hidden: set by a parallel run for its parts
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mailchaos run [flags]\n\nRuns the scenarios the label filter selects (default: nightly) and leaves\nout/<run id>/ with the reports; out/latest points at it.\n\nflags:\n")
		shown := flag.NewFlagSet("run", flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != partFlag {
				shown.Var(f.Value, f.Name, f.Usage)
				shown.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		shown.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	labelSet := false
	fs.Visit(func(f *flag.Flag) { labelSet = labelSet || f.Name == "label" })
	if p.Scenarios != "" && !labelSet {
		p.Label = "" // named scenarios run whatever their labels
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// A broken scenario file stops the run here, every problem listed,
	// before anything starts.
	if err := scenarios.AddScenarioFiles(p.ScenarioFiles); err != nil {
		return err
	}
	if *list {
		return listScenarios(os.Stdout, p)
	}
	p, err := scenarios.Prepare(p)
	if err != nil {
		return fmt.Errorf("parameters:\n%w", err)
	}
	if p.Part == 0 {
		staleRuns(ctx, os.Stderr, *cleanStale)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted before the run started")
	}
	if p.Part == 0 && p.Parallel > 1 {
		selected, err := scenarios.Selected(p)
		if err != nil {
			return err
		}
		// One part (a single scenario, or none selected) runs here,
		// exactly as without --parallel.
		if parts := scenarios.Split(p, selected, p.Parallel); len(parts) > 1 {
			st := runParallel(fs, p, parts, os.Stdout, os.Stderr)
			fmt.Printf("mailchaos run %s: %s (exit %d)%s\nreports: %s\n", st.RunID, st.Outcome, st.ExitCode, reasonSuffix(st.Reason), p.RunDir())
			return ExitFor(st)
		}
	}
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteCfg, reporterCfg := ginkgo.GinkgoConfiguration()
	reporterCfg.Verbose = *verbose
	reporterCfg.NoColor = !isTerminal(os.Stdout)
	st := scenarios.RunSuite(&ginkgoT{}, p, suiteCfg, reporterCfg)
	if p.Part > 0 {
		fmt.Printf("mailchaos run %s part %d: %s (exit %d)%s\n", st.RunID, p.Part, st.Outcome, st.ExitCode, reasonSuffix(st.Reason))
		return ExitFor(st)
	}
	fmt.Printf("mailchaos run %s: %s (exit %d)%s\nreports: %s\n", st.RunID, st.Outcome, st.ExitCode, reasonSuffix(st.Reason), p.RunDir())
	return ExitFor(st)
}

// staleRuns reports the runs on the engine that killed processes left
// behind (their owner is gone), and with clean removes them. It is best
// effort and bounded: an engine that does not answer is Up's to report.
func staleRuns(ctx context.Context, w io.Writer, clean bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if clean {
		res, err := harness.Clean(ctx, harness.CleanOptions{})
		if err == nil && len(res.Runs) == 0 {
			return
		}
		printClean(w, "", res)
		if err != nil {
			fmt.Fprintln(w, "mailchaos: --clean-stale:", err)
		}
		return
	}
	stale, err := harness.StaleRuns(ctx)
	if err != nil || len(stale) == 0 {
		return
	}
	var list []string
	for _, r := range stale {
		_, why := r.Liveness()
		list = append(list, fmt.Sprintf("%s (%s; %s)", r.ID, why, r.Resources()))
	}
	fmt.Fprintf(w, "mailchaos: %d stale run(s) on this engine, left by processes that are gone: %s; 'mailchaos clean' (or run --clean-stale) removes them\n",
		len(stale), strings.Join(list, ", "))
}

// listScenarios prints every scenario with its labels and what the stack
// makes of it: "runs", "skipped: <what the stack lacks>", or the error
// that would refuse it; then what a run would do, one line per scenario.
// Nothing is started.
func listScenarios(w io.Writer, p flow.Params) error {
	var broken error
	for _, s := range scenarios.Catalog() {
		verdict := "runs"
		plan, err := flow.NewPlan(p, s)
		switch {
		case err != nil:
			verdict = "error: " + err.Error()
			broken = err
		case plan.SkipReason() != "":
			verdict = "skipped: " + plan.SkipReason()
		}
		fmt.Fprintf(w, "%-20s %-22s %s\n", s.Name, strings.Join(s.Labels, ","), verdict)
	}
	if broken != nil {
		return fmt.Errorf("stack %s: some scenarios cannot be planned (see above)", p.Stack)
	}
	return nil
}

// ExitFor maps a run's status to the error main turns into the exit code:
// nil for 0, withExitCode(1, ...) for a failed gate, withExitCode(130, ...)
// for a run a second signal ended (a parallel run's parent returns it;
// one process exits in the signal handler), a plain error (2) for a
// failed harness.
func ExitFor(st flow.Status) error {
	switch st.ExitCode {
	case flow.ExitPass:
		return nil
	case flow.ExitGate:
		return withExitCode(flow.ExitGate, errors.New("gate failed: "+st.Reason))
	case flow.ExitInterrupted:
		return withExitCode(flow.ExitInterrupted, errors.New("interrupted: "+st.Reason))
	default:
		return errors.New("harness failed: " + st.Reason)
	}
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
