package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/mailchaos/mailchaos/harness"
)

func init() {
	register("clean", "remove the containers, networks and volumes of a run (--run ID) or of every mailchaos run", runClean)
}

// runClean removes what crashed runs left behind, selected by the
// mailchaos.run label. Logs are not saved: use Teardown for that.
func runClean(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("clean", flag.ContinueOnError)
	run := fs.String("run", "", "run id to remove (default: every mailchaos run on this engine)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mailchaos clean [--run ID]")
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
	removed, err := harness.CleanReport(ctx, *run)
	what := "every mailchaos run"
	if *run != "" {
		what = "run " + *run
	}
	if err != nil && removed == (harness.Removed{}) {
		return err
	}
	fmt.Fprintf(os.Stderr, "clean: %s: removed %s\n", what, removed)
	return err
}
