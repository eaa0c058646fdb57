package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/scenarios/doctor"
)

const (
	referenceStack = "../../../fixtures/stacks/reference/stack.yaml"
	doctorVariants = "../../../fixtures/stacks/doctor"
)

// runCaptured runs a mailchaos command whose output goes to the writers it
// is given, through main's exit-code mapping, and returns the exit code,
// stdout and stderr.
func runCaptured(ctx context.Context, t *testing.T, name string, cmd func(context.Context, []string, *syncBuffer, *syncBuffer) error, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut syncBuffer
	reg := "test-" + name + "-" + hex.EncodeToString(randomBytes(4))
	register(reg, "", func(ctx context.Context, args []string) error { return cmd(ctx, args, &out, &errOut) })
	code := run(ctx, append([]string{reg}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func doctorFn(ctx context.Context, args []string, out, errOut *syncBuffer) error {
	return doctorCmd(ctx, args, out, errOut)
}

// needDocker skips a test that brings a stack up where it cannot: -short,
// no engine. A missing image is found by the command itself (see skipIfNoImages).
func needDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker test (-short)")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Skip("no Docker engine")
	}
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

func skipIfNoImages(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "make images") {
		t.Skipf("images missing: %s", stderr)
	}
}

// testRunID names a test's run: MAILCHAOS_TEST_PREFIX (default "test")
// tells a developer's runs apart on a shared engine.
func testRunID(what string) string {
	prefix := os.Getenv("MAILCHAOS_TEST_PREFIX")
	if prefix == "" {
		prefix = "test"
	}
	return prefix + "-" + what + "-" + hex.EncodeToString(randomBytes(2))
}

// A doctor that cannot start is a harness failure (exit 2) that names the
// problem, and brings nothing up.
func TestDoctorHarnessFailures(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "stack.yaml")
	os.WriteFile(broken, []byte("version: 1\nservices:\n  a: {image: x, role: stor}\n"), 0o644)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--stack", "/nonexistent/stack.yaml", "--users", "0"}, []string{"--stack /nonexistent/stack.yaml", "--users 0"}},
		{[]string{"--stack", broken}, []string{`unknown role "stor"`, `did you mean "store"`}},
		{[]string{"--run-id", "Bad_ID"}, []string{"--run-id"}},
	} {
		code, _, errOut := runCaptured(context.Background(), t, "doctor", doctorFn, c.args...)
		if code != 2 {
			t.Errorf("doctor %v: exit %d, want 2: %s", c.args, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("doctor %v: stderr lacks %q: %s", c.args, w, errOut)
			}
		}
	}
}

// checkLine matches a result line: status, check name, optional target.
var checkLine = regexp.MustCompile(`(?m)^(ok|warn|FAIL)\s+(\S+)(?: \S+)?\s{2,}`)

// The doctor on the reference stack and on the stacks of
// fixtures/stacks/doctor: green on the reference; on a submission that
// takes AUTH without TLS and on an edge without drain control, exit 1
// naming the failing checks; on a stack without an edge, exit 0 with a
// warning that the scenarios needing edge control will be skipped. Four
// bring-ups: about 20-40 s each for the reference and its variants, 10 s
// for the small one.
func TestDoctorOnReferenceAndVariants(t *testing.T) {
	needDocker(t)
	out := t.TempDir()
	variant := func(name string) string { return filepath.Join(doctorVariants, name, "stack.yaml") }
	for _, c := range []struct {
		name, stack  string
		code         int
		fails, warns []string // the failing and warning checks, exactly, in order
	}{
		{"reference", referenceStack, 0, nil, nil},
		{"submission-auth-without-tls", variant("submission-auth-without-tls"), 1, []string{doctor.CheckAuthNeedsTLS}, nil},
		{"edge-without-control", variant("edge-without-control"), 1,
			[]string{doctor.CheckEdgeDrain, doctor.CheckEdgeSessions, doctor.CheckEdgeEnable}, []string{doctor.CheckEdgeServing}},
		{"no-edge", variant("no-edge"), 0, nil, []string{doctor.CheckQuiesce, doctor.CheckEdgeControl}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			id := testRunID("doc")
			start := time.Now()
			code, stdout, stderr := runCaptured(ctx, t, "doctor", doctorFn, "--stack", c.stack, "--run-id", id, "--out", out)
			skipIfNoImages(t, stderr)
			t.Logf("doctor %s: exit %d in %s\n%s", c.name, code, time.Since(start).Round(time.Second), stdout)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			var failed, warned []string
			checks := 0
			for _, m := range checkLine.FindAllStringSubmatch(stdout, -1) {
				checks++
				switch m[1] {
				case "FAIL":
					failed = append(failed, m[2])
				case "warn":
					warned = append(warned, m[2])
				}
			}
			if checks < 8 {
				t.Errorf("only %d check lines", checks)
			}
			if strings.Join(failed, ",") != strings.Join(c.fails, ",") {
				t.Errorf("failed checks %q, want %q", failed, c.fails)
			}
			if strings.Join(warned, ",") != strings.Join(c.warns, ",") {
				t.Errorf("warnings %q, want %q", warned, c.warns)
			}
			for _, f := range c.fails {
				if !strings.Contains(stderr, f) {
					t.Errorf("the exit message does not name %s: %s", f, stderr)
				}
			}
			for _, w := range []string{"\nok    " + doctor.CheckSubmitAndRead, "\nok    " + doctor.CheckLink + " "} {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks a line starting %q", strings.TrimSpace(w))
				}
			}
			if c.name == "no-edge" && !strings.Contains(stdout, "no edge control: rolling-upgrade and standby-takeover will be skipped") {
				t.Errorf("no-edge: the warning does not name the skipped scenarios")
			}
			if left := leftovers(id); left != "" {
				t.Errorf("run %s left resources behind: %s", id, left)
			}
		})
	}
}

// leftovers lists containers, networks and volumes still labelled with run.
func leftovers(run string) string {
	var left []string
	for _, kind := range []string{"ps -a", "network ls", "volume ls"} {
		args := append(strings.Fields(kind), "-q", "--filter", "label=mailchaos.run="+run)
		out, _ := exec.Command("docker", args...).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			left = append(left, kind+": "+strings.ReplaceAll(s, "\n", " "))
		}
	}
	return strings.Join(left, "; ")
}
