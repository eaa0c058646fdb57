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

// signalChild is the child half of the signal tests: it brings the toy
// stack up, says so, and signals itself as the test asks
// (MAILCHAOS_SIGNAL_CHILD: "default" once, "deferred" twice with
// DeferInterrupts, checking in between that the first signal was left to
// it). The handler must end the process.
func signalChild(t *testing.T, mode string) {
	if mode == "deferred" {
		DeferInterrupts(func(sig os.Signal) {
			_ = os.WriteFile(os.Getenv("MAILCHAOS_SIGNAL_OUT")+"/abandoned", []byte(sig.String()), 0o644)
		})
	}
	d, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := Up(ctx, d, Options{RunID: os.Getenv("MAILCHAOS_SIGNAL_RUN"), OutDir: os.Getenv("MAILCHAOS_SIGNAL_OUT")})
	if err != nil {
		_ = env.Teardown(context.Background())
		t.Fatal(err)
	}
	fmt.Println("UP", env.RunID())
	_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
	if mode == "deferred" {
		time.Sleep(2 * time.Second)
		if Interrupted() != syscall.SIGINT || len(liveEnvs()) != 1 {
			t.Fatalf("after the first signal: interrupted %v, %d live stacks; want it recorded and left to the caller", Interrupted(), len(liveEnvs()))
		}
		fmt.Println("FIRST LEFT TO THE CALLER")
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
	time.Sleep(time.Minute) // the handler exits the process first
	t.Fatal("still running a minute after the signal")
}

// runSignalChild runs this test binary as a signal child in mode and
// checks that it exited 130 with nothing of its run left.
func runSignalChild(t *testing.T, test, mode string) (out, runID string) {
	if testing.Short() {
		t.Skip("Docker test")
	}
	needTestImages(t)
	runID = testRunID()
	out = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MAILCHAOS_SIGNAL_CHILD="+mode, "MAILCHAOS_SIGNAL_RUN="+runID, "MAILCHAOS_SIGNAL_OUT="+out)
	output, err := cmd.CombinedOutput()
	defer func() {
		if t.Failed() {
			_, _ = Clean(context.Background(), CleanOptions{Run: runID, Force: true})
		}
	}()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
		t.Fatalf("child exit: %v, want code %d\n%s", err, ExitInterrupted, output)
	}
	if !regexp.MustCompile(`(?m)^UP ` + regexp.QuoteMeta(runID) + `$`).Match(output) {
		t.Fatalf("child never came up:\n%s", output)
	}
	if mode == "deferred" && !regexp.MustCompile(`(?m)^FIRST LEFT TO THE CALLER$`).Match(output) {
		t.Fatalf("the first signal was not left to the caller:\n%s", output)
	}
	assertNothingLeft(t, runID)
	return out, runID
}

// TestSignalTeardown: without DeferInterrupts, SIGINT tears the stack down
// (saving its logs) and exits with code 130.
func TestSignalTeardown(t *testing.T) {
	if mode := os.Getenv("MAILCHAOS_SIGNAL_CHILD"); mode != "" {
		signalChild(t, mode)
		return
	}
	out, _ := runSignalChild(t, "TestSignalTeardown", "default")
	if _, err := os.Stat(out + "/logs/front.log"); err != nil {
		t.Errorf("logs not saved on SIGINT: %v", err)
	}
}

// TestSignalDeferred: with DeferInterrupts the first signal is the
// caller's (recorded, nothing torn down); the second removes the stack at
// once, calls the caller's abandon hook and exits with code 130.
func TestSignalDeferred(t *testing.T) {
	if mode := os.Getenv("MAILCHAOS_SIGNAL_CHILD"); mode != "" {
		signalChild(t, mode)
		return
	}
	out, _ := runSignalChild(t, "TestSignalDeferred", "deferred")
	if b, err := os.ReadFile(out + "/abandoned"); err != nil || string(b) != "terminated" {
		t.Errorf("abandon hook: %q, %v; want it called with the second signal (terminated)", b, err)
	}
}
