package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/fixtures/stacks"
	"github.com/mailchaos/mailchaos/harness/images"
	"github.com/mailchaos/mailchaos/scenarios"
)

// TestInstalledBinary is what a platform team does in its own repository:
// the mailchaos binary, built static as `CGO_ENABLED=0 go install` builds
// it, run from a folder that is not the checkout. It lists the scenarios,
// validates a run against the embedded reference stack, and resolves every
// image of the embedded reference images.yaml, toxiproxy included. Where a
// Docker engine answers it also builds the toxiproxy recipe (kind self)
// under a throwaway tag and runs it.
func TestInstalledBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mailchaos binary")
	}
	bin := buildMailchaos(t)
	away := t.TempDir() // no fixtures/ here, no go.mod above
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache) // the in-process Resolve below too
	mc := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = away
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("mailchaos %s: %v", strings.Join(args, " "), err)
		}
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}

	out, errOut, code := mc("run", "--list")
	if code != 0 {
		t.Fatalf("run --list: exit %d\n%s", code, errOut)
	}
	for _, s := range scenarios.Catalog() {
		if !strings.Contains(out, s.Name) {
			t.Errorf("run --list lacks %s:\n%s", s.Name, out)
		}
	}

	// Every parameter but the rate is valid: the default stack, builtin:reference, included.
	_, errOut, code = mc("run", "--rate", "0")
	if code != 2 || !strings.Contains(errOut, "--rate") || strings.Contains(errOut, "--stack") {
		t.Errorf("run --rate 0: exit %d, want 2 naming --rate only:\n%s", code, errOut)
	}

	out, errOut, code = mc("images", "--plan")
	if code != 0 {
		t.Fatalf("images --plan: exit %d\n%s", code, errOut)
	}
	path, err := stacks.Resolve(stacks.Reference, stacks.ImageSpec)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := images.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var selfTag string
	for _, im := range spec.Images {
		line := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(im.Tag) + `\s+` + string(im.Kind) + `\s+[0-9a-f]{12}\s+\S.*$`)
		if !line.MatchString(out) {
			t.Errorf("images --plan lacks %s (%s):\n%s", im.Tag, im.Kind, out)
		}
		if im.Kind == images.KindSelf {
			selfTag = im.Tag
		}
	}
	if selfTag == "" || !strings.Contains(out, bin+" (linux/") {
		t.Errorf("the reference toxiproxy image is not the binary itself:\n%s", out)
	}

	// The binary serves Toxiproxy as a hidden subcommand and under its name.
	toxi := filepath.Join(t.TempDir(), "toxiproxy")
	if err := os.Symlink(bin, toxi); err != nil {
		t.Fatal(err)
	}
	version := regexp.MustCompile(`^toxiproxy-server version 2\.\d+\.\d+ `)
	if out, _, code := mc("toxiproxy", "-version"); code != 0 || !version.MatchString(out) {
		t.Errorf("mailchaos toxiproxy -version: exit %d, %q", code, out)
	}
	if out, err := exec.Command(toxi, "-version").Output(); err != nil || !version.MatchString(string(out)) {
		t.Errorf("toxiproxy -version: %v, %q", err, out)
	}

	if exec.Command("docker", "version").Run() != nil {
		t.Log("no Docker engine: the self image is not built")
		return
	}
	tag := "mailchaos/toxiproxy-portable-test:" + time.Now().Format("150405")
	im := spec.Find(selfTag)
	file := filepath.Join(away, "images.yaml")
	recipe := "version: 1\nimages:\n  - tag: " + tag + "\n    kind: self\n    binary: " + im.Binary + "\n"
	if err := os.WriteFile(file, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", tag).Run() })
	if _, errOut, code := mc("images", "--file", "images.yaml"); code != 0 {
		t.Fatalf("images --file images.yaml (kind self): exit %d\n%s", code, errOut)
	}
	out2, err := exec.Command("docker", "run", "--rm", "--network", "none", tag, "-version").Output()
	if err != nil || !version.MatchString(string(out2)) {
		t.Fatalf("docker run %s -version: %v, %q", tag, err, out2)
	}
}

// buildMailchaos builds the mailchaos binary as `CGO_ENABLED=0 go install`
// builds it, into a temporary folder, and returns its path.
func buildMailchaos(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailchaos")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
