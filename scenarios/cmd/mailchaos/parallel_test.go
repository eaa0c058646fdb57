package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// A part is started with every flag the parent was given but those it
// sets per part; parsed again, they give the parent's parameters with the
// part's scenarios, run id and seed.
func TestPartArgs(t *testing.T) {
	p := flow.Defaults()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	p.Bind(fs)
	verbose := fs.Bool("v", false, "")
	fs.Bool("clean-stale", false, "")
	if err := fs.Parse([]string{"--parallel", "2", "--duration", "90s", "--rate", "2.5", "--stack", "my/stack.yaml", "-v",
		"--scenario-file", "a.yaml", "--scenario-file", "b", "--label", "nightly && !dr", "--clean-stale", "--sign-key", "k.pem", "--timeout", "1h"}); err != nil {
		t.Fatal(err)
	}
	p.RunID, p.Seed = "20261207-101010-abcd", 42
	args := partArgs(fs, p, 2, []string{"chaos", "mta-crash"})
	if args[0] != "run" {
		t.Fatalf("args %q", args)
	}
	q := flow.Defaults()
	qs := flag.NewFlagSet("run", flag.ContinueOnError)
	q.Bind(qs)
	qv := qs.Bool("v", false, "")
	qs.Bool("clean-stale", false, "")
	qs.IntVar(&q.Part, partFlag, 0, "")
	if err := qs.Parse(args[1:]); err != nil {
		t.Fatalf("a part cannot parse %q: %v", args, err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"part", q.Part, 2}, {"parallel", q.Parallel, 0}, {"scenario", q.Scenarios, "chaos,mta-crash"},
		{"run id", q.RunID, p.RunID}, {"seed", q.Seed, int64(42)}, {"label", q.Label, "nightly && !dr"},
		{"duration", q.Duration, p.Duration}, {"rate", q.Rate, 2.5}, {"stack", q.Stack, "my/stack.yaml"},
		{"timeout", q.Timeout, p.Timeout}, {"progress", q.Progress, "log"}, {"sign key", q.SignKey, ""},
		{"verbose", *qv, *verbose}, {"scenario files", strings.Join(q.ScenarioFiles, " "), "a.yaml b"},
	} {
		if c.got != c.want {
			t.Errorf("%s: part has %v, want %v (args %q)", c.what, c.got, c.want, args)
		}
	}
	if slices.Contains(args, "--clean-stale=true") {
		t.Errorf("a part cleans stale runs too: %q", args)
	}
}

// A run a second signal ended exits 130 through main's mapping (a
// parallel run's parent returns it).
func TestRunExitCodeInterrupted(t *testing.T) {
	register("test-exit-130", "", func(context.Context, []string) error {
		return ExitFor(flow.Status{ExitCode: flow.ExitInterrupted, Reason: "interrupted at chaos/load (SIGINT), then SIGINT again"})
	})
	var out, errOut bytes.Buffer
	if got := run(context.Background(), []string{"test-exit-130"}, &out, &errOut); got != flow.ExitInterrupted {
		t.Errorf("exit %d, want 130 (%s)", got, errOut.String())
	}
}

// The whole parallel path with no Docker work: scenarios the stack cannot
// serve are skipped in two parts, each a process of the built binary;
// their lines come through prefixed, and the run folder holds one status
// and one report of the three scenarios, as a run in one process leaves.
func TestParallelRunOfSkippedScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mailchaos binary")
	}
	bin := buildMailchaos(t)
	out := t.TempDir()
	stack, _ := filepath.Abs("../../testdata/one-region/stack.yaml")
	cmd := exec.Command(bin, "run", "--parallel", "2", "--scenario", "region-partition,client-partition,region-loss",
		"--stack", stack, "--out", out, "--run-id", "par-1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != flow.ExitHarness {
		t.Fatalf("exit %d (%v), want 2 (every scenario skipped)\n%s\n%s", code, err, o.String(), e.String())
	}
	for _, w := range []string{"[part 1] ", "[part 2] ", "2 scenarios at once"} {
		if !strings.Contains(o.String()+e.String(), w) {
			t.Errorf("output lacks %q:\n%s\n%s", w, o.String(), e.String())
		}
	}
	st, err := flow.ReadStatus(filepath.Join(out, "par-1"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range st.Scenarios {
		names = append(names, sc.Name+":"+sc.Outcome)
	}
	if got, want := strings.Join(names, " "), "client-partition:skipped region-loss:skipped region-partition:skipped"; got != want {
		t.Errorf("status.json scenarios %s, want %s", got, want)
	}
	if !strings.Contains(st.Reason, "every selected scenario was skipped") {
		t.Errorf("reason %q", st.Reason)
	}
	if _, err := os.Stat(filepath.Join(out, "par-1", flow.PartsDir)); !os.IsNotExist(err) {
		t.Errorf("the parts' folder is left in the run folder (%v)", err)
	}
	if b, err := exec.Command(bin, "verify", filepath.Join(out, "par-1")).CombinedOutput(); err != nil {
		t.Errorf("verify the run folder: %v\n%s", err, b)
	}
}
