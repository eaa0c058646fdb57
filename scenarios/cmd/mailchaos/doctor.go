package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios"
	"github.com/mailchaos/mailchaos/scenarios/doctor"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

func init() {
	register("doctor", "bring a stack up and check the contract each role keeps, one line per check; exit 1 if one fails, 2 if the harness does", func(ctx context.Context, args []string) error {
		return doctorCmd(ctx, args, os.Stdout, os.Stderr)
	})
}

// runIDRe is what --run-id accepts, as `mailchaos run` does.
var runIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)

// doctorOptions are the flags of `mailchaos doctor`.
type doctorOptions struct {
	stack, runID, out  string
	users              int
	deliver, upTimeout time.Duration
	checksTimeout      time.Duration
}

func (o doctorOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := flow.CheckStack(o.stack); err != nil {
		errs = append(errs, err)
	}
	if o.runID != "" && !runIDRe.MatchString(o.runID) {
		bad("--run-id %q: use lower-case letters, digits and '-', at most 41 characters", o.runID)
	}
	if o.users < 1 || o.users > 100000 {
		bad("--users %d: must be between 1 and 100000", o.users)
	}
	if o.out == "" {
		bad("--out: empty; give a folder for the run folders")
	}
	if o.deliver < time.Second || o.deliver > 10*time.Minute {
		bad("--deliver-within %s: must be between 1s and 10m", o.deliver)
	}
	if o.upTimeout < 30*time.Second {
		bad("--up-timeout %s: give the stack at least 30s to come up", o.upTimeout)
	}
	if o.checksTimeout < time.Minute {
		bad("--checks-timeout %s: give the checks at least 1m", o.checksTimeout)
	}
	return errors.Join(errs...)
}

// doctorCmd is `mailchaos doctor`: bring the stack up, run the checks of
// package doctor (one line each, as they finish), tear the stack down.
// Exit 1 when a check failed, 2 when the harness did (bad flags or
// descriptor, no Docker, a stack that does not come up).
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := doctorOptions{stack: flow.Defaults().Stack, out: flow.Defaults().Out}
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.StringVar(&o.stack, "stack", o.stack, "stack descriptor (stack.yaml)")
	fs.StringVar(&o.runID, "run-id", "", "run id (default: doctor-YYYYMMDD-HHMMSS-<hex>)")
	fs.IntVar(&o.users, "users", 5, "test users provisioned")
	fs.StringVar(&o.out, "out", o.out, "folder of run folders: the stack's logs go to <out>/<run id>/logs/")
	fs.DurationVar(&o.deliver, "deliver-within", 30*time.Second, "how long a submitted message may take to be readable over IMAP")
	fs.DurationVar(&o.upTimeout, "up-timeout", 10*time.Minute, "bound of the bring-up")
	fs.DurationVar(&o.checksTimeout, "checks-timeout", 10*time.Minute, "bound of all the checks together")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mailchaos doctor [flags]\n\nBrings the stack up and checks the contract each role must keep for the\nscenarios to mean anything: the endpoints greet (SMTP 220, IMAP * OK),\nsubmission refuses AUTH before STARTTLS, an unknown recipient gets a 5xx at\nRCPT, a submitted message can be read back over IMAP, every MTA's quiesce\ncommand runs, the edge's control commands drain and re-enable a node, every\nlink can be cut and restored. One line per check: ok, warn or FAIL with the\nfix. Tears the stack down afterwards. Exit 0 when no check failed, 1 when one\ndid, 2 when the harness failed (bad descriptor, no Docker, no stack).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.validate(); err != nil {
		return fmt.Errorf("parameters:\n%w", err)
	}
	if o.runID == "" {
		o.runID = "doctor-" + harness.NewRunID()
	}
	d, err := loadStack(o.stack)
	if err != nil {
		return err
	}
	runDir := filepath.Join(o.out, o.runID)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fmt.Fprintf(stdout, "mailchaos doctor: stack %s (%s), run %s\n", d.Name, o.stack, o.runID)

	upCtx, cancel := context.WithTimeout(ctx, o.upTimeout)
	env, err := harness.Up(upCtx, d, harness.Options{RunID: o.runID, OutDir: runDir, Users: o.users, Logger: log})
	cancel()
	// Registered before the error check: a half-built stack is removed too.
	defer func() { _ = env.Teardown(context.WithoutCancel(ctx)) }()
	if err != nil {
		return fmt.Errorf("bring the stack up: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, o.checksTimeout)
	results := doctor.Run(cctx, env, doctor.Options{DeliveryBound: o.deliver, Catalog: scenarios.Catalog()},
		func(r doctor.Result) { fmt.Fprintln(stdout, r) })
	checksErr := cctx.Err()
	cancel()
	tdErr := env.Teardown(context.WithoutCancel(ctx))
	if tdErr == nil {
		tdErr = stackLeft(context.WithoutCancel(ctx), o.runID)
	}
	fmt.Fprintf(stdout, "doctor: %s\n", doctor.Summary(results))
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after %d checks", len(results))
	case checksErr != nil:
		return fmt.Errorf("the checks did not finish within --checks-timeout %s (%d done)", o.checksTimeout, len(results))
	case tdErr != nil:
		return fmt.Errorf("tear the stack down: %w", tdErr)
	}
	if failed := doctor.Failed(results); len(failed) > 0 {
		names := make([]string, len(failed))
		for i, r := range failed {
			names[i] = r.Name()
		}
		return withExitCode(1, fmt.Errorf("stack %s fails %d check(s): %s", d.Name, len(failed), strings.Join(names, ", ")))
	}
	return nil
}

// stackLeft checks that nothing labelled with the run is left; an error
// names what is and how to remove it.
func stackLeft(ctx context.Context, runID string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	left, err := harness.Remaining(ctx, runID)
	if err != nil {
		return fmt.Errorf("check what run %s left: %w", runID, err)
	}
	if left != (harness.Removed{}) {
		return fmt.Errorf("run %s left %s behind: remove them with 'mailchaos clean --run %s'", runID, left, runID)
	}
	return nil
}
