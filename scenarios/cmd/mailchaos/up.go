package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

func init() {
	register("up", "bring a stack up and hold it until Ctrl-C or 'mailchaos down': endpoints, CA, logins and commands to try it", func(ctx context.Context, args []string) error {
		return upCmd(ctx, args, os.Stdout, os.Stderr)
	})
	register("down", "stop a stack that 'mailchaos up' holds (--run ID), or remove what is left of it", func(ctx context.Context, args []string) error {
		return downCmd(ctx, args, os.Stdout)
	})
}

// stopFile is the file `mailchaos down` creates in the run folder to ask
// the `mailchaos up` holding the run to tear it down.
const stopFile = "stop"

// upOptions are the flags of `mailchaos up`.
type upOptions struct {
	stack, runID, out string
	users             int
	hold, upTimeout   time.Duration
}

func (o upOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := flow.CheckStack(o.stack); err != nil {
		errs = append(errs, err)
	}
	if o.runID != "" && !runIDRe.MatchString(o.runID) {
		bad("--run-id %q: use lower-case letters, digits and '-', at most 41 characters", o.runID)
	}
	if o.users < 0 || o.users > 100000 {
		bad("--users %d: must be between 0 (the descriptor's count) and 100000", o.users)
	}
	if o.out == "" {
		bad("--out: empty; give a folder for the run folders")
	}
	if o.hold < time.Minute {
		bad("--for %s: hold the stack for at least 1m", o.hold)
	}
	if o.upTimeout < 30*time.Second {
		bad("--up-timeout %s: give the stack at least 30s to come up", o.upTimeout)
	}
	return errors.Join(errs...)
}

// upCmd is `mailchaos up`: it brings the stack up, prints how to use it to
// stdout, holds it until ctx ends, the run folder's stop file appears
// (`mailchaos down`), the stack's containers disappear (`mailchaos down`
// or `clean` without an up to answer), or --for passes, then tears it
// down and checks that nothing is left.
func upCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := upOptions{stack: flow.Defaults().Stack, out: flow.Defaults().Out}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&o.stack, "stack", o.stack, "stack descriptor (stack.yaml)")
	fs.StringVar(&o.runID, "run-id", "", "run id (default: up-YYYYMMDD-HHMMSS-<hex>)")
	fs.IntVar(&o.users, "users", 0, "test users provisioned (0: the descriptor's count)")
	fs.StringVar(&o.out, "out", o.out, "folder of run folders: the CA goes to <out>/<run id>/ca.pem, logs to <out>/<run id>/logs/")
	fs.DurationVar(&o.hold, "for", 12*time.Hour, "hold the stack at most this long, then tear it down")
	fs.DurationVar(&o.upTimeout, "up-timeout", 10*time.Minute, "bound of the bring-up")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mailchaos up [flags]\n\nBrings the stack up and prints its client endpoints, the run's CA file, three\nlogins, and a swaks and a curl command that send a message and read it back\nwith the CA verified. Holds the stack until Ctrl-C or 'mailchaos down --run <id>'\n(from another shell), then tears it down: nothing is left behind.\n\nflags:\n")
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
		o.runID = "up-" + harness.NewRunID()
	}
	d, err := loadStack(o.stack)
	if err != nil {
		return err
	}
	runDir := filepath.Join(o.out, o.runID)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("create the run folder: %w", err)
	}
	stop := filepath.Join(runDir, stopFile)
	if err := os.Remove(stop); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove an old stop request: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fmt.Fprintf(stderr, "mailchaos up: bringing stack %s (%s) up as run %s\n", d.Name, o.stack, o.runID)

	upCtx, cancel := context.WithTimeout(ctx, o.upTimeout)
	env, err := harness.Up(upCtx, d, harness.Options{RunID: o.runID, OutDir: runDir, Users: o.users, Logger: log})
	cancel()
	// Registered before the error check: a half-built stack is removed too.
	defer func() { _ = env.Teardown(context.WithoutCancel(ctx)) }()
	if err != nil {
		return fmt.Errorf("bring the stack up: %w", err)
	}
	info, err := newUpInfo(env, runDir)
	if err != nil {
		return err
	}
	info.print(stdout)

	reason, outside := holdStack(ctx, env, stop, o.hold, log)
	fmt.Fprintf(stderr, "mailchaos up: %s: tearing run %s down\n", reason, o.runID)
	if outside {
		// Let the outside removal finish first: two removals of one
		// container at once make the engine refuse the second.
		awaitNoContainers(context.WithoutCancel(ctx), o.runID, 30*time.Second)
	}
	tdErr := env.Teardown(context.WithoutCancel(ctx))
	_ = os.Remove(stop)
	if err := stackLeft(context.WithoutCancel(ctx), o.runID); err != nil {
		return errors.Join(tdErr, err)
	}
	fmt.Fprintf(stderr, "mailchaos up: run %s is down: nothing left (no container, network or volume labelled %s=%s); logs in %s\n",
		o.runID, harness.LabelRun, o.runID, filepath.Join(runDir, "logs"))
	if tdErr != nil && outside {
		// Nothing is left, which is what the teardown is for; what it
		// could not do (save the logs of removed containers) is said.
		log.Warn("teardown after the outside removal", "err", tdErr)
		return nil
	}
	return tdErr
}

// holdStack waits until ctx ends, the stop file appears, the stack's
// containers go, or limit passes, says which, and whether the stack was
// removed from outside.
func holdStack(ctx context.Context, env *harness.Env, stop string, limit time.Duration, log *slog.Logger) (reason string, outside bool) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// The containers the stack has now; fewer later means someone removed
	// them (mailchaos down without a run folder to leave the stop file in,
	// or mailchaos clean).
	base := -1
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return "interrupted", false
		case <-deadline.C:
			return fmt.Sprintf("held for %s (--for)", limit), false
		case <-tick.C:
		}
		if _, err := os.Stat(stop); err == nil {
			return "stop requested (mailchaos down)", false
		}
		if i%3 != 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		left, err := harness.Remaining(cctx, env.RunID())
		cancel()
		switch {
		case err != nil:
			log.Warn("cannot see the stack's containers; holding on", "err", err)
		case base < 0:
			base = left.Containers
		case left.Containers < base:
			return fmt.Sprintf("%d of the stack's %d containers were removed from outside (mailchaos down or clean)", base-left.Containers, base), true
		}
	}
}

// awaitNoContainers polls until no container is labelled with run, for at
// most d.
func awaitNoContainers(ctx context.Context, run string, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		cctx, c := context.WithTimeout(ctx, 10*time.Second)
		left, err := harness.Remaining(cctx, run)
		c()
		if err == nil && left.Containers == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// upInfo is what `mailchaos up` prints about a running stack.
type upInfo struct {
	runID, stack string
	// endpoints are "name", "host:port" pairs in a fixed order.
	endpoints [][2]string
	caFile    string
	users     []harness.User
	send      string // a swaks command that submits a message; "" without an endpoint to send to
	read      string // a curl command that reads it over IMAP; "" without an imap endpoint
}

// newUpInfo writes the run's CA to <runDir>/ca.pem and collects what to print.
func newUpInfo(env *harness.Env, runDir string) (*upInfo, error) {
	abs, err := filepath.Abs(filepath.Join(runDir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("write the CA: %w", err)
	}
	if err := os.WriteFile(abs, env.CACertPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("write the CA: %w", err)
	}
	info := &upInfo{runID: env.RunID(), stack: env.Descriptor().Name, caFile: abs}
	names := []string{"smtp", "submission", "imap"}
	for _, n := range slices.Sorted(maps.Keys(env.Descriptor().Endpoints)) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	addrs := map[string]string{}
	for _, n := range names {
		if a, err := env.Endpoint(n); err == nil {
			info.endpoints = append(info.endpoints, [2]string{n, a})
			addrs[n] = a
		}
	}
	users := env.Users()
	info.users = users[:min(3, len(users))]
	if len(users) == 0 {
		return info, nil
	}
	u := users[0]
	if a := addrs["submission"]; a != "" {
		host, port := splitHostPort(a)
		info.send = fmt.Sprintf("swaks --server %s --port %s --tls --tls-verify --tls-ca-path %s --auth PLAIN --auth-user %s --auth-password %s --from %s --to %s",
			host, port, shellQuote(abs), shellQuote(u.Address), shellQuote(u.Password), shellQuote(u.Address), shellQuote(u.Address))
	} else if a := addrs["smtp"]; a != "" {
		host, port := splitHostPort(a)
		info.send = fmt.Sprintf("swaks --server %s --port %s --from %s --to %s", host, port, shellQuote(u.Address), shellQuote(u.Address))
	}
	if a := addrs["imap"]; a != "" {
		// RFC 5092: the UID is a path segment after the mailbox; curl
		// fetches the whole message with UID FETCH.
		info.read = fmt.Sprintf("curl -sS --ssl-reqd --cacert %s --user %s %s",
			shellQuote(abs), shellQuote(u.Address+":"+u.Password), shellQuote("imap://"+a+"/INBOX/;UID=1"))
	}
	return info, nil
}

func (i *upInfo) print(w io.Writer) {
	fmt.Fprintf(w, "\nstack %s is up as run %s\n\nendpoints:\n", i.stack, i.runID)
	for _, e := range i.endpoints {
		fmt.Fprintf(w, "  %-12s %s\n", e[0], e[1])
	}
	fmt.Fprintf(w, "CA file: %s\n", i.caFile)
	if len(i.users) > 0 {
		fmt.Fprintf(w, "logins:\n")
		for _, u := range i.users {
			fmt.Fprintf(w, "  %-28s %s\n", u.Address, u.Password)
		}
	}
	if i.send != "" {
		fmt.Fprintf(w, "\nsend a message to yourself (STARTTLS with the CA verified, AUTH PLAIN):\n  %s\n", i.send)
	}
	if i.read != "" {
		fmt.Fprintf(w, "read it back over IMAP (STARTTLS with the CA verified):\n  %s\n", i.read)
	}
	fmt.Fprintf(w, "\nstop: Ctrl-C here, or from another shell: mailchaos down --run %s\n", i.runID)
}

func splitHostPort(addr string) (host, port string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// downCmd is `mailchaos down`: it asks the `mailchaos up` holding the run
// to tear it down (a stop file in the run folder), waits for that, and
// removes by label whatever is still there (an up that crashed, or runs
// elsewhere).
func downCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	run := fs.String("run", "", "run id that 'mailchaos up' printed (required)")
	out := fs.String("out", flow.Defaults().Out, "folder of run folders, as given to 'mailchaos up'")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for 'mailchaos up' to tear the stack down itself (saving its logs) before removing it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mailchaos down --run ID [--out DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case *run == "":
		return errors.New("--run: give the run id that 'mailchaos up' printed (to remove every run: mailchaos clean)")
	case !runIDRe.MatchString(*run):
		return fmt.Errorf("--run %q: not a run id (lower-case letters, digits and '-')", *run)
	case *wait < 0:
		return fmt.Errorf("--wait %s: must not be negative", *wait)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	left, err := harness.Remaining(cctx, *run)
	cancel()
	if err != nil {
		return err
	}
	if left == (harness.Removed{}) {
		fmt.Fprintf(stdout, "down: run %s: nothing to take down (no container, network or volume labelled %s=%s)\n", *run, harness.LabelRun, *run)
		return nil
	}
	runDir := filepath.Join(*out, *run)
	if st, err := os.Stat(runDir); err == nil && st.IsDir() && *wait > 0 {
		if err := os.WriteFile(filepath.Join(runDir, stopFile), []byte("requested by mailchaos down\n"), 0o644); err != nil {
			return fmt.Errorf("ask mailchaos up to stop: %w", err)
		}
		if awaitGone(ctx, *run, *wait) {
			fmt.Fprintf(stdout, "down: run %s: torn down by its mailchaos up; logs in %s\n", *run, filepath.Join(runDir, "logs"))
			return nil
		}
		fmt.Fprintf(stdout, "down: run %s: mailchaos up did not tear it down within %s; removing it\n", *run, *wait)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Force: the up that owns the run may still be alive, but it did not
	// stop when asked.
	res, err := harness.Clean(rctx, harness.CleanOptions{Run: *run, Force: true})
	if err != nil {
		return fmt.Errorf("remove run %s: %w", *run, err)
	}
	fmt.Fprintf(stdout, "down: run %s: removed %s (logs not saved)\n", *run, res.Removed)
	return stackLeft(ctx, *run)
}

// awaitGone polls until nothing labelled with run is left, for at most d.
func awaitGone(ctx context.Context, run string, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		cctx, c := context.WithTimeout(ctx, 10*time.Second)
		left, err := harness.Remaining(cctx, run)
		c()
		if err == nil && left == (harness.Removed{}) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// loadStack loads the descriptor --stack names: a path, or a builtin:
// reference (the default, the embedded reference stack) that
// fixtures/stacks resolves to a file first.
func loadStack(ref string) (*harness.Descriptor, error) {
	path, err := (flow.Params{Stack: ref}).StackPath()
	if err != nil {
		return nil, err
	}
	return harness.Load(path)
}
