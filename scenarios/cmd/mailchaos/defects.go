package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailchaos/mailchaos/fixtures/stacks"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios"
	"github.com/mailchaos/mailchaos/scenarios/defects"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

func init() {
	register("defects", "run the seeded-defect stack variants and the clean stack on their scenarios; print what was caught", defectsCmd)
}

// defectsOptions are the flags of `mailchaos defects`.
type defectsOptions struct {
	stacks, reference, out, id, variants string
	noClean                              bool
	duration, steady, converge, timeout  time.Duration
	rate                                 float64
	users                                int
	seed                                 int64
}

// reportIDRe keeps run ids (<id>-<variant>, <id>-ref-<scenario>) within
// what `mailchaos run --run-id` accepts.
var reportIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,17}$`)

func defectsCmd(ctx context.Context, args []string) error {
	def := flow.Defaults()
	o := defectsOptions{}
	fs := flag.NewFlagSet("defects", flag.ContinueOnError)
	fs.StringVar(&o.stacks, "stacks", stacks.Defects, "folder of the variants (<variant>/stack.yaml); default: the variants embedded in mailchaos")
	fs.StringVar(&o.reference, "reference", def.Stack, "the clean stack the variants vary")
	fs.StringVar(&o.out, "out", def.Out, "folder of run folders; the table goes to <out>/defects-<id>/")
	fs.StringVar(&o.id, "id", "", "report id (default d<MMDD-HHMMSS>): runs are <id>-<variant> and <id>-ref-<scenario>")
	fs.StringVar(&o.variants, "variant", "", "run only these variants (comma-separated; default: all)")
	fs.BoolVar(&o.noClean, "no-clean", false, "skip the clean reference runs (no false-alarm count)")
	fs.DurationVar(&o.duration, "duration", 40*time.Second, "load-with-faults phase of each run")
	fs.DurationVar(&o.steady, "steady", 5*time.Second, "clean steady-state load before the faults")
	fs.DurationVar(&o.converge, "converge", def.Converge, "bound of each run's convergence window")
	fs.DurationVar(&o.timeout, "run-timeout", 20*time.Minute, "bound of each run (past it the run is an error)")
	fs.Float64Var(&o.rate, "rate", def.Rate, "SMTP arrival rate, messages/s")
	fs.IntVar(&o.users, "users", def.Users, "test users")
	fs.Int64Var(&o.seed, "seed", 0, "seed shared by every run (0: pick one, printed)")
	list := fs.Bool("list", false, "list the variants and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mailchaos defects [flags]\n\nRuns each stack variant with a seeded defect (%s/<variant>) against the\nscenario that must expose it, and the clean reference stack against the same\nscenarios; prints variant, scenario, expected finding, actual finding and\ncaught, then 'detected <n>/<total>, false alarms <m>/<clean runs>'. The table\nis also written to <out>/defects-<id>/defects.md and defects.json\n(<out>/latest-defects points at it). Exit 0 when every defect was caught and\nthe clean stack raised no alarm, 1 otherwise, 2 when a run failed in the harness.\n\nflags:\n", o.stacks)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	vs, err := defects.Select(splitList(o.variants))
	if err != nil {
		return err
	}
	if *list {
		for _, v := range vs {
			fmt.Printf("%-22s %-16s %-24s %s\n", v.Name, v.Scenario, v.Expect, v.Models)
		}
		return nil
	}
	if err := errors.Join(o.checkRun(), o.prepare(vs)); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the mailchaos binary to run scenarios with: %w", err)
	}
	return runDefects(ctx, o, vs, self, os.Stdout)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// prepare fills the defaults and checks, before anything starts, that every
// stack loads and every scenario exists.
func (o *defectsOptions) prepare(vs []defects.Variant) error {
	var errs []error
	if o.id == "" {
		o.id = "d" + time.Now().Format("0102-150405")
	}
	if !reportIDRe.MatchString(o.id) {
		errs = append(errs, fmt.Errorf("--id %q: use lower-case letters, digits and '-', at most 18 characters", o.id))
	}
	if o.seed == 0 {
		o.seed = rand.Int64N(1<<53) + 1
	}
	known := map[string]bool{}
	for _, s := range scenarios.Catalog() {
		known[s.Name] = true
	}
	paths := []string{o.reference}
	for _, v := range vs {
		paths = append(paths, v.Stack(o.stacks))
		if !known[v.Scenario] {
			errs = append(errs, fmt.Errorf("variant %s: unknown scenario %q", v.Name, v.Scenario))
		}
	}
	for _, s := range paths {
		path, err := stacks.Resolve(s, stacks.Descriptor)
		if err == nil {
			_, err = harness.Load(path)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(filepath.Join(o.out, "defects-"+o.id)); err == nil {
		errs = append(errs, fmt.Errorf("--id %s: %s exists already: pick another id", o.id, filepath.Join(o.out, "defects-"+o.id)))
	}
	return errors.Join(errs...)
}

// checkRun checks the flags every run of the table is given, as `mailchaos
// run` checks them (flow.Params.Validate): a value each run would refuse
// (--rate NaN, --duration 0s) is refused once, before the first starts,
// not found by every run in turn as a harness failure.
func (o defectsOptions) checkRun() error {
	p := flow.Defaults()
	p.Duration, p.Steady, p.Converge, p.Rate, p.Users, p.Seed, p.Out = o.duration, o.steady, o.converge, o.rate, o.users, o.seed, o.out
	var errs []error
	if err := p.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--run-timeout %s: must be positive", o.timeout))
	}
	return errors.Join(errs...)
}

// plannedRun is one `mailchaos run` of the table.
type plannedRun struct {
	row   defects.Outcome
	stack string
}

// plan orders the runs by scenario, the clean run of a scenario first, so
// one clean run serves every variant of its scenario.
func (o defectsOptions) plan(vs []defects.Variant) []plannedRun {
	var runs []plannedRun
	for _, sc := range defects.Scenarios(vs) {
		if !o.noClean {
			runs = append(runs, plannedRun{stack: o.reference,
				row: defects.Outcome{Variant: defects.Reference, Scenario: sc, RunID: o.id + "-ref-" + sc}})
		}
		for _, v := range vs {
			if v.Scenario == sc {
				runs = append(runs, plannedRun{stack: v.Stack(o.stacks),
					row: defects.Outcome{Variant: v.Name, Scenario: sc, Expect: v.Expect, Models: v.Models, RunID: o.id + "-" + v.Name}})
			}
		}
	}
	return runs
}

func (o defectsOptions) params(scenarios []string) map[string]string {
	p := map[string]string{
		"duration": o.duration.String(), "steady": o.steady.String(), "converge": o.converge.String(),
		"rate": strconv.FormatFloat(o.rate, 'g', -1, 64) + "/s", "users": strconv.Itoa(o.users),
		"seed": strconv.FormatInt(o.seed, 10), "reference": o.reference,
	}
	for _, sc := range scenarios {
		if d := defects.Duration(sc, o.duration); d != o.duration {
			p["duration of "+sc] = d.String()
		}
	}
	return p
}

// runDefects runs the plan, self being the mailchaos binary that runs
// each scenario, and prints and writes the table.
func runDefects(ctx context.Context, o defectsOptions, vs []defects.Variant, self string, stdout io.Writer) error {
	dir := filepath.Join(o.out, "defects-"+o.id)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("create the report folder: %w", err)
	}
	if err := pointLatest(o.out, "latest-defects", "defects-"+o.id); err != nil {
		return err
	}
	runs := o.plan(vs)
	scs := defects.Scenarios(vs)
	rep := defects.Report{ID: o.id, Started: time.Now(), Params: o.params(scs)}
	longer := ""
	for _, sc := range scs {
		if d := defects.Duration(sc, o.duration); d != o.duration {
			longer += fmt.Sprintf(" (%s: %s)", sc, d)
		}
	}
	fmt.Fprintf(stdout, "defects %s: %d runs (%d variants, %d clean), seed %d, duration %s%s, steady %s; report %s\n",
		o.id, len(runs), len(vs), len(runs)-len(vs), o.seed, o.duration, longer, o.steady, dir)
	for i, r := range runs {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stdout, "defects: [%d/%d] %s on %s (run %s) ...\n", i+1, len(runs), r.row.Variant, r.row.Scenario, r.row.RunID)
		row := o.execRun(ctx, self, r, filepath.Join(dir, "logs", r.row.RunID+".log"))
		rep.Outcomes = append(rep.Outcomes, row)
		fmt.Fprintf(stdout, "defects: [%d/%d] %s on %s: %s (%s)\n", i+1, len(runs), r.row.Variant, r.row.Scenario,
			resultText(row), row.Duration.Round(time.Second))
		// The report is rewritten after every run, so an interrupted
		// session still leaves what it learnt.
		if err := writeDefectsReport(dir, &rep); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout)
	if err := defects.WriteText(stdout, rep.Outcomes); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted after %d of %d runs: %w", len(rep.Outcomes), len(runs), err)
	}
	s := rep.Summary
	switch {
	case s.Errors > 0:
		return fmt.Errorf("%d of %d runs failed in the harness (see %s/logs)", s.Errors, len(runs), dir)
	case !s.Perfect():
		return withExitCode(1, fmt.Errorf("%s (%d missed); table in %s", s, s.Variants-s.Detected, dir))
	}
	return nil
}

// resultText is a run's progress line: its result and what it found.
func resultText(o defects.Outcome) string {
	switch {
	case o.Result == defects.Error:
		return "error: " + o.Err
	case len(o.Findings) == 0:
		return o.Result + ", no finding"
	}
	parts := make([]string, len(o.Findings))
	for i, f := range o.Findings {
		parts[i] = f.String()
	}
	return o.Result + ", found " + strings.Join(parts, "; ")
}

// execRun runs one scenario in a child `mailchaos run` (a Ginkgo suite runs
// once per process) and judges its run folder. The child's output goes to
// logPath; an interrupt reaches it as SIGTERM, so it tears its stack down.
func (o defectsOptions) execRun(ctx context.Context, self string, r plannedRun, logPath string) defects.Outcome {
	start := time.Now()
	row := r.row
	logf, err := os.Create(logPath)
	if err != nil {
		return defects.Judge(row, flow.ExitHarness, nil, nil, "create run log: "+err.Error())
	}
	defer logf.Close()
	args := []string{"run", "--stack", r.stack, "--scenario", r.row.Scenario, "--run-id", r.row.RunID, "--out", o.out,
		"--duration", defects.Duration(r.row.Scenario, o.duration).String(), "--steady", o.steady.String(), "--converge", o.converge.String(),
		"--rate", strconv.FormatFloat(o.rate, 'g', -1, 64), "--users", strconv.Itoa(o.users), "--seed", strconv.FormatInt(o.seed, 10),
		"--timeout", o.timeout.String(), "--progress", "log"}
	fmt.Fprintf(logf, "$ %s %s\n", self, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "TESTCONTAINERS_RYUK_DISABLED=true")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = flow.TeardownTimeout + time.Minute
	runErr := cmd.Run()
	row.Duration = time.Since(start)
	code := flow.ExitHarness
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() >= 0 {
		code = cmd.ProcessState.ExitCode()
	}
	v, st, reason, err := defects.ReadRun(filepath.Join(o.out, r.row.RunID), r.row.Scenario)
	harnessErr := ""
	switch {
	case code == flow.ExitPass || code == flow.ExitGate:
		if err != nil || v == nil {
			// A gate verdict without a readable verdict cannot be judged.
			code, harnessErr = flow.ExitHarness, fmt.Sprintf("exit %d but no verdict for %s in %s: %v", code, r.row.Scenario, filepath.Join(o.out, r.row.RunID), err)
		}
	case reason != "":
		harnessErr = reason
	case runErr != nil:
		harnessErr = runErr.Error()
	}
	return defects.Judge(row, code, v, st, harnessErr)
}

func writeDefectsReport(dir string, rep *defects.Report) error {
	rep.Finished = time.Now()
	rep.Summary = defects.Summarize(rep.Outcomes)
	write := func(name string, fn func(io.Writer) error) error {
		tmp := filepath.Join(dir, "."+name+".tmp")
		f, err := os.Create(tmp)
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return os.Rename(tmp, filepath.Join(dir, name))
	}
	if err := write("defects.json", func(w io.Writer) error { return defects.WriteJSON(w, *rep) }); err != nil {
		return err
	}
	return write("defects.md", func(w io.Writer) error {
		return defects.WriteMarkdown(w, *rep, func(id string) string { return "../" + id + "/index.html" })
	})
}

// pointLatest points <out>/<name> at target with a relative symlink,
// replacing an older link atomically and refusing to replace anything else.
func pointLatest(out, name, target string) error {
	link := filepath.Join(out, name)
	if st, err := os.Lstat(link); err == nil && st.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a symlink: move it away", link)
	}
	tmp := filepath.Join(out, fmt.Sprintf(".%s.%d", name, os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("point %s at %s: %w", link, target, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("point %s at %s: %w", link, target, err)
	}
	return nil
}
