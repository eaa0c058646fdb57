package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/fixtures/stacks"
	"github.com/mailchaos/mailchaos/harness/images"
)

func init() {
	register("images", "build the stack's images offline (skips those already up to date)", runImages)
}

// stringList is a repeatable, comma-separated flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func runImages(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	file := fs.String("file", stacks.Reference, "image spec: an images.yaml path, or builtin:<stack> for a stack embedded in mailchaos")
	mode := fs.String("mode", "auto", "how Debian bases are made: auto (registry, else debootstrap), pull, debootstrap")
	var only stringList
	fs.Var(&only, "only", "build only this tag and what it is built from (repeatable, comma-separated)")
	jobs := fs.Int("jobs", 2, "images built at once")
	force := fs.Bool("force", false, "rebuild even when the content hash matches")
	timeout := fs.Duration("timeout", 45*time.Minute, "give up on the whole build after this long")
	pullTimeout := fs.Duration("pull-timeout", 20*time.Second, "registry attempt limit in auto mode")
	self := fs.String("self", "", "static Linux binary that kind self images copy (default: this mailchaos)")
	plan := fs.Bool("plan", false, "print what would be built, from what, with which content hash, and exit (no Docker needed)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mailchaos images [--file images.yaml|builtin:reference] [--mode auto|pull|debootstrap] [--only tag] [--plan]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	m, err := images.ParseMode(*mode)
	if err != nil {
		return err
	}
	path, err := stacks.Resolve(*file, stacks.ImageSpec)
	if err != nil {
		return fmt.Errorf("--file %w", err)
	}
	spec, err := images.Load(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	opts := images.Options{
		Mode: m, Only: only, Jobs: *jobs, Force: *force, PullTimeout: *pullTimeout, Progress: os.Stderr, Self: *self,
	}
	if *plan {
		return printPlan(ctx, os.Stdout, *file, spec, opts)
	}
	start := time.Now()
	res, err := images.Build(ctx, spec, opts)
	var built, skipped, failed int
	for _, r := range res {
		switch r.Status {
		case images.StatusBuilt:
			built++
		case images.StatusSkipped:
			skipped++
		default:
			failed++
		}
	}
	if len(res) > 0 {
		fmt.Fprintf(os.Stderr, "images: %d built, %d up to date, %d failed in %s\n",
			built, skipped, failed, time.Since(start).Round(100*time.Millisecond))
	}
	return err
}

// printPlan prints, in build order, each image Build would consider: tag,
// kind, content hash and what it is built from.
func printPlan(ctx context.Context, w io.Writer, file string, spec *images.Spec, opts images.Options) error {
	plan, err := images.Plan(ctx, spec, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "images of %s (%s), in build order:\n", file, spec.Path)
	for _, p := range plan {
		fmt.Fprintf(w, "  %-28s %-6s %.12s  %s\n", p.Image.Tag, p.Image.Kind, p.Hash, p.From)
	}
	return nil
}
