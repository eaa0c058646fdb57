//go:build linux

// Command spawn runs a command and writes its exit code and peak resident
// memory to a file: spawn REPORT COMMAND [ARG...]. REPORT gets one line,
// "<exit code> <child ru_maxrss KiB> <spawn's own VmHWM KiB>".
//
// It exists because on Linux a child's ru_maxrss is never lower than the
// peak RSS of the process that started it (exec folds the old image's
// high-water mark into the new one), and a test binary is tens of MB. This
// program is a few MB, so the child's figure is its own; the third field
// says how low that floor is. SIGINT is passed on to the child.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: spawn REPORT COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(2)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(2)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		fmt.Fprintln(os.Stderr, "spawn: no rusage")
		os.Exit(2)
	}
	line := fmt.Sprintf("%d %d %d\n", cmd.ProcessState.ExitCode(), ru.Maxrss, ownHWM())
	if err := os.WriteFile(os.Args[1], []byte(line), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(2)
	}
}

// ownHWM returns this process's peak RSS in KiB (VmHWM), or -1.
func ownHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib); err == nil {
				return kib
			}
		}
	}
	return -1
}
