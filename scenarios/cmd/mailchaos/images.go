package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

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
	file := fs.String("file", "fixtures/stacks/reference/images.yaml", "image spec file")
	mode := fs.String("mode", "auto", "how Debian bases are made: auto (registry, else debootstrap), pull, debootstrap")
	var only stringList
	fs.Var(&only, "only", "build only this tag and what it is built from (repeatable, comma-separated)")
	jobs := fs.Int("jobs", 2, "images built at once")
	force := fs.Bool("force", false, "rebuild even when the content hash matches")
	timeout := fs.Duration("timeout", 45*time.Minute, "give up on the whole build after this long")
	pullTimeout := fs.Duration("pull-timeout", 20*time.Second, "registry attempt limit in auto mode")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mailchaos images [--file images.yaml] [--mode auto|pull|debootstrap] [--only tag]")
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
	spec, err := images.Load(*file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	res, err := images.Build(ctx, spec, images.Options{
		Mode: m, Only: only, Jobs: *jobs, Force: *force, PullTimeout: *pullTimeout, Progress: os.Stderr,
	})
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
