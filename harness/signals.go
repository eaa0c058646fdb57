package harness

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// ExitInterrupted is the exit code of a process a signal stopped before it
// could finish in order: 128 + SIGINT, as a shell reports it.
const ExitInterrupted = 130

// Bounds of what a signal makes the handler do itself.
const (
	signalTeardownTimeout = 2 * time.Minute  // the first signal without DeferInterrupts
	abandonTimeout        = 45 * time.Second // removal at once, then the caller's note
)

var sigs struct {
	once       sync.Once
	mu         sync.Mutex
	deferred   bool
	abandon    func(os.Signal)
	first      os.Signal
	count      int
	abandoning bool
}

// DeferInterrupts leaves the first SIGINT or SIGTERM of the process to the
// caller, which stops in order and tears its stacks down itself: the
// scenario suite lets Ginkgo cancel the running phase, then run the cleanup
// nodes that heal every fault, save the logs and tear the stack down, and
// write the report. A second signal does not wait for that: abandon (when
// not nil) is called first, to stop the caller's own shutdown and write in
// a moment what it can, then every live stack is removed at once (no
// logs) and the process exits with ExitInterrupted; the caller must not
// exit meanwhile (see Abandoning). A third signal exits at once.
//
// Without DeferInterrupts (a program using the harness as a library), the
// first signal tears every live stack down, saving logs, and exits with
// ExitInterrupted; a second exits at once.
func DeferInterrupts(abandon func(os.Signal)) {
	sigs.mu.Lock()
	sigs.deferred, sigs.abandon = true, abandon
	sigs.mu.Unlock()
	installSignalHandler()
}

// Interrupted returns the first SIGINT or SIGTERM the process received
// since the harness started listening (DeferInterrupts or the first Up),
// or nil.
func Interrupted() os.Signal {
	sigs.mu.Lock()
	defer sigs.mu.Unlock()
	return sigs.first
}

// Abandoning reports whether a second signal is removing the stacks and
// will end the process: a caller that finished meanwhile calls
// WaitAbandoned rather than exit with its own code.
func Abandoning() bool {
	sigs.mu.Lock()
	defer sigs.mu.Unlock()
	return sigs.abandoning
}

// WaitAbandoned blocks while a second signal's removal runs; the handler
// ends the process. It returns (after the removal's bound) only if the
// handler did not.
func WaitAbandoned() {
	if Abandoning() {
		time.Sleep(abandonTimeout + 5*time.Second)
	}
}

// installSignalHandler starts listening for SIGINT and SIGTERM, once.
func installSignalHandler() {
	sigs.once.Do(func() {
		ch := make(chan os.Signal, 3)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			for sig := range ch {
				onSignal(sig)
			}
		}()
	})
}

// onSignal acts on one signal; the work it starts runs in goroutines so
// that a later signal is still heard.
func onSignal(sig os.Signal) {
	sigs.mu.Lock()
	sigs.count++
	n, deferred, abandon := sigs.count, sigs.deferred, sigs.abandon
	if sigs.first == nil {
		sigs.first = sig
	}
	sigs.mu.Unlock()
	envs := liveEnvs()
	switch {
	case n == 1 && deferred:
		fmt.Fprintf(os.Stderr, "mailchaos: %v: stopping in order: heal every fault, save logs, tear down %d stack(s), write the report; signal again to remove the stacks at once and exit\n", sig, len(envs))
	case n == 1:
		fmt.Fprintf(os.Stderr, "mailchaos: %v: tearing down %d stack(s); signal again to exit at once\n", sig, len(envs))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), signalTeardownTimeout)
			defer cancel()
			teardownAll(ctx, envs)
			os.Exit(ExitInterrupted)
		}()
	case n == 2 && deferred:
		fmt.Fprintf(os.Stderr, "mailchaos: %v again: removing %d stack(s) at once (no logs), then exiting; signal again to exit now\n", sig, len(envs))
		sigs.mu.Lock()
		sigs.abandoning = true
		sigs.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), abandonTimeout)
			defer cancel()
			if abandon != nil {
				done := make(chan struct{})
				go func() { defer close(done); abandon(sig) }()
				select {
				case <-done:
				case <-ctx.Done():
				}
			}
			removeAll(ctx, envs)
			os.Exit(ExitInterrupted)
		}()
	default:
		os.Exit(ExitInterrupted)
	}
}

// teardownAll tears every env down at once, saving logs.
func teardownAll(ctx context.Context, envs []*Env) {
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Teardown(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "mailchaos: teardown %s: %v\n", e.RunID(), err)
			}
		}()
	}
	wg.Wait()
}

// removeAll removes every env's resources at once without saving logs or
// waiting for a teardown in progress: what a second signal asks for. An Up
// in progress is cancelled first.
func removeAll(ctx context.Context, envs []*Env) {
	if len(envs) == 0 {
		return
	}
	for _, e := range envs {
		if e.cancelUp != nil {
			e.cancelUp()
		}
	}
	cli, err := connectDocker(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mailchaos: remove stacks: %v\n", err)
		return
	}
	defer cli.Close()
	me := Self()
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A teardown may be removing the same containers ("removal
			// already in progress"): try again until nothing is left.
			removed, err := removeRun(ctx, cli, e.runID, &me)
			for err != nil && ctx.Err() == nil {
				time.Sleep(time.Second)
				var more Removed
				more, err = removeRun(ctx, cli, e.runID, &me)
				removed.add(more)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "mailchaos: remove %s: %v (mailchaos clean --run %s removes what is left)\n", e.runID, err, e.runID)
				return
			}
			fmt.Fprintf(os.Stderr, "mailchaos: removed %s: %s\n", e.runID, removed)
		}()
	}
	wg.Wait()
}

// TeardownAll tears down every live stack of the process, saving logs,
// within ctx: what a watchdog does before it exits, when the code that
// owns the stacks is stuck. It returns how many it tore down.
func TeardownAll(ctx context.Context) int {
	envs := liveEnvs()
	teardownAll(ctx, envs)
	return len(envs)
}
