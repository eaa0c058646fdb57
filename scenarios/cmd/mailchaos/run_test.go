package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// The exit code CI sees for each outcome of a run, through main's error
// mapping.
func TestRunExitCodes(t *testing.T) {
	for _, c := range []struct {
		st   flow.Status
		code int
	}{
		{flow.Status{ExitCode: flow.ExitPass}, 0},
		{flow.Status{ExitCode: flow.ExitGate, Reason: "gate failed in region-loss"}, 1},
		{flow.Status{ExitCode: flow.ExitHarness, Reason: "harness failed in region-loss"}, 2},
	} {
		name := "test-exit-" + c.st.Outcome + strings.Repeat("x", c.code)
		register(name, "", func(context.Context, []string) error { return ExitFor(c.st) })
		var out, errOut bytes.Buffer
		if got := run(context.Background(), []string{name}, &out, &errOut); got != c.code {
			t.Errorf("status exit %d: process exit %d, want %d (%s)", c.st.ExitCode, got, c.code, errOut.String())
		}
		if c.code != 0 && !strings.Contains(errOut.String(), c.st.Reason) {
			t.Errorf("stderr %q lacks the reason %q", errOut.String(), c.st.Reason)
		}
	}
}

// Bad parameters are a harness failure (2), reported all at once.
func TestRunRejectsBadParameters(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"run", "--stack", "/nonexistent.yaml", "--rate", "0", "--users", "0"}, &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, w := range []string{"--stack", "--rate", "--users"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %s: %s", w, errOut.String())
		}
	}
}

// A scenario file with mistakes stops the run before anything starts:
// exit 2, every mistake with its line, in well under a second.
func TestRunRefusesABrokenScenarioFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "team.yaml")
	os.WriteFile(f, []byte("name: team\nproves: p\nlabels: [nightly]\nfaults:\n  - {at: 1.5, spec: \"kill:rol=mta\"}\nthresholds: [\"lost <> 0\"]\n"), 0o644)
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"run", "--scenario-file", f, "--out", t.TempDir()}, &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errOut.String())
	}
	for _, w := range []string{"team.yaml:5:", `unknown key "rol"`, "at: 1.5", "team.yaml:6:"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q: %s", w, errOut.String())
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s to refuse", d)
	}
}

// up and doctor take the same --stack values as run: the default builtin
// reference loads, from any folder.
func TestUpAndDoctorLoadTheDefaultStack(t *testing.T) {
	t.Chdir(t.TempDir())
	d, err := loadStack(flow.Defaults().Stack)
	if err != nil || len(d.Services) == 0 {
		t.Fatalf("load %s: %v", flow.Defaults().Stack, err)
	}
	if err := flow.CheckStack("nope.yaml"); err == nil {
		t.Error("a missing descriptor passed")
	}
}
