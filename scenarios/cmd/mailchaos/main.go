// Command mailchaos is the mailchaos command line: it builds images, runs
// scenarios against a stack and verifies recorded histories. Each subcommand
// lives in its own file and registers itself in init().
//
// Exit codes: 0 success, 1 a subcommand's own failure (for example a failed
// verdict), 2 a harness error (bad usage, Docker, images, stack) or an
// interrupt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
)

// command is one registered subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
	hidden        bool // left out of the usage list
}

var commands = map[string]command{}

// register adds a subcommand; call it from init() in the subcommand's file.
func register(name, summary string, run func(ctx context.Context, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("mailchaos: subcommand registered twice: " + name)
	}
	commands[name] = command{name: name, summary: summary, run: run}
}

// registerMain adds a subcommand whose main writes to the writers it is
// given, so that a test runs it in process and reads what it printed.
func registerMain(name, summary string, main func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	register(name, summary, func(ctx context.Context, args []string) error {
		return main(ctx, args, os.Stdout, os.Stderr)
	})
}

// registerHidden adds a subcommand that the usage list leaves out.
func registerHidden(name, summary string, run func(ctx context.Context, args []string) error) {
	register(name, summary, run)
	c := commands[name]
	c.hidden = true
	commands[name] = c
}

// exitError makes a subcommand exit with a code other than 2.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExitCode wraps err so main exits with code (e.g. 1 for a failed verdict).
func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, argsOf(os.Args), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// argsOf returns the subcommand and flags of argv. Started under the name
// of a multi-call subcommand (the toxiproxy image's /toxiproxy is this
// binary), the name is the subcommand.
func argsOf(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if name := filepath.Base(argv[0]); name == toxiproxyCommand {
		return append([]string{name}, argv[1:]...)
	}
	return argv[1:]
}

// run dispatches args to a subcommand and maps its error to an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				// Each subcommand prints its flags on -h.
				_ = c.run(ctx, []string{"-h"})
				return 0
			}
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mailchaos: unknown command %q; run 'mailchaos help'\n", args[0])
		return 2
	}
	return exitCode(ctx, c.name, c.run(ctx, args[1:]), stderr)
}

// exitCode maps what subcommand name returned to the process's exit code,
// printing the error, if any, to stderr.
func exitCode(ctx context.Context, name string, err error, stderr io.Writer) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "mailchaos %s: %v\n", name, err)
		return ee.code
	default:
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "mailchaos %s: interrupted: %v\n", name, err)
		} else {
			fmt.Fprintf(stderr, "mailchaos %s: %v\n", name, err)
		}
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mailchaos: chaos and resilience tests for mail platforms")
	fmt.Fprintln(w, "\nusage: mailchaos <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "  help         this list; 'mailchaos help <command>' for its flags")
}
