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
)

func init() {
	register("clean", "remove what killed runs left behind (owner gone), or one run (--run ID); --force also removes runs in progress", runClean)
}

// runClean removes what killed or crashed runs left behind, selected by
// the mailchaos.run label and judged by their owner labels. Logs are not
// saved: use Teardown for that.
func runClean(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("clean", flag.ContinueOnError)
	run := fs.String("run", "", "remove this run and the stacks of its scenarios (<id>-<scenario>) (default: every run whose owner process is gone)")
	force := fs.Bool("force", false, "also remove runs whose owner process still runs, or cannot be checked from this host")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mailchaos clean [--run ID] [--force]\n\nWithout --force, only runs whose owner process is gone (same host, pid not\nalive or alive with another start time) are removed; the others are listed.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := harness.Clean(ctx, harness.CleanOptions{Run: *run, Force: *force})
	printClean(os.Stderr, *run, res)
	if err != nil {
		return err
	}
	if *run != "" && len(res.Kept) > 0 {
		return withExitCode(1, errors.New("run "+*run+" kept: its owner runs or cannot be checked (stop it, or add --force)"))
	}
	return nil
}

// printClean says what a clean removed and kept, one run a line, then a
// summary line.
func printClean(w io.Writer, run string, res harness.CleanResult) {
	for _, r := range res.Runs {
		_, why := r.Liveness()
		fmt.Fprintf(w, "clean: removed run %s (%s): %s\n", r.ID, why, r.Resources())
	}
	for _, k := range res.Kept {
		fmt.Fprintf(w, "clean: kept run %s (%s): %s\n", k.ID, k.Why, k.Resources())
	}
	what := "every run whose owner is gone"
	if run != "" {
		what = "run " + run
	}
	var ids []string
	for _, r := range res.Runs {
		ids = append(ids, r.ID)
	}
	summary := fmt.Sprintf("clean: %s: removed %d run(s)", what, len(res.Runs))
	if len(ids) > 0 {
		summary += " (" + strings.Join(ids, ", ") + "): " + res.Removed.String()
	}
	if len(res.Kept) > 0 {
		summary += fmt.Sprintf("; kept %d run(s) (--force removes them)", len(res.Kept))
	}
	fmt.Fprintln(w, summary)
}
