package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestSignalTeardown runs Up in a child process that then gets SIGINT: the
// child must tear its stack down and exit with code 130.
func TestSignalTeardown(t *testing.T) {
	if os.Getenv("MAILCHAOS_SIGNAL_CHILD") == "1" {
		d, err := Load("testdata/toy/stack.yaml")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		runID := os.Getenv("MAILCHAOS_SIGNAL_RUN")
		env, err := Up(ctx, d, Options{RunID: runID, OutDir: os.Getenv("MAILCHAOS_SIGNAL_OUT")})
		if err != nil {
			_ = env.Teardown(context.Background())
			t.Fatal(err)
		}
		fmt.Println("UP", env.RunID())
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(time.Minute) // the handler exits the process first
		t.Fatal("still running a minute after SIGINT")
	}
	if testing.Short() {
		t.Skip("Docker test")
	}
	needTestImages(t)
	runID := testRunID()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSignalTeardown$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MAILCHAOS_SIGNAL_CHILD=1", "MAILCHAOS_SIGNAL_RUN="+runID, "MAILCHAOS_SIGNAL_OUT="+out)
	output, err := cmd.CombinedOutput()
	defer func() {
		if t.Failed() {
			_ = Clean(context.Background(), runID)
		}
	}()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("child exit: %v, want code 130\n%s", err, output)
	}
	if !regexp.MustCompile(`(?m)^UP ` + regexp.QuoteMeta(runID) + `$`).Match(output) {
		t.Fatalf("child never came up:\n%s", output)
	}
	assertNothingLeft(t, runID)
	if _, err := os.Stat(out + "/logs/front.log"); err != nil {
		t.Errorf("logs not saved on SIGINT: %v", err)
	}
}
