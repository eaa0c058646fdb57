// Command bench-check measures the checker on generated histories: for
// each size it writes a synthetic history of that many messages to disk
// (history/synth, streaming), then judges it in a child process of its
// own, so that the child's peak RSS is the checker's alone, and prints the
// wall time, the CPU time (user + system) and the peak RSS. The history
// is judged as `mailchaos` judges a run's: check.Run on the file.
//
// Usage: go run ./reports/cmd/bench-check [-sizes 100000,1000000,10000000] [-dir DIR] [-keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailchaos/mailchaos/history/synth"
	"github.com/mailchaos/mailchaos/reports/check"
)

func main() {
	sizes := flag.String("sizes", "100000,1000000,10000000", "message counts of the histories, comma-separated")
	dir := flag.String("dir", "", "where to write the histories (default: a temporary folder, removed after)")
	keep := flag.Bool("keep", false, "keep the histories (and reuse one of the right size on the next run)")
	judge := flag.String("judge", "", "judge this history and print its status (the child's job)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *judge != "" {
		err = judgeOne(ctx, *judge)
	} else {
		err = bench(ctx, *sizes, *dir, *keep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-check:", err)
		os.Exit(1)
	}
}

// judgeOne is the child: it judges the history at path under the gates a
// nightly scenario uses and fails unless the verdict is a success.
func judgeOne(ctx context.Context, path string) error {
	v, err := check.Run(ctx, path, check.Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
	if err != nil {
		return fmt.Errorf("judge %s: %w", path, err)
	}
	if v.Status != check.Success {
		return fmt.Errorf("judge %s: %s: %s", path, v.Status, v.Reason)
	}
	fmt.Printf("%d records %s\n", v.Records, v.Status)
	return nil
}

// bench generates and judges one history per size, printing a row each.
func bench(ctx context.Context, sizes, dir string, keep bool) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "mailchaos-bench-check-")
		if err != nil {
			return fmt.Errorf("make temporary folder: %w", err)
		}
		dir = d
		if !keep {
			defer os.RemoveAll(d)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	fmt.Printf("%-10s %10s %10s %8s %8s %12s\n", "messages", "file_MiB", "wall_s", "cpu_s", "rss_MiB", "records")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("size %q: not a positive number", s)
		}
		path := filepath.Join(dir, fmt.Sprintf("history-%d.jsonl", n))
		if err := generate(path, n, keep); err != nil {
			return err
		}
		if err := measure(ctx, self, path, n, keep); err != nil {
			return err
		}
	}
	return nil
}

// generate writes the history of n messages to path, unless keep is set
// and a complete one is already there.
func generate(path string, n int, keep bool) error {
	if _, err := os.Stat(path); err == nil && keep {
		return nil
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create history: %w", err)
	}
	if err := synth.Generate(f, n); err != nil {
		f.Close()
		return fmt.Errorf("generate history of %d messages: %w", n, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write history of %d messages: %w", n, err)
	}
	return os.Rename(tmp, path)
}

// measure judges path in a child process and prints its row; the history
// is removed after unless keep is set.
func measure(ctx context.Context, self, path string, n int, keep bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat history: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "-judge", path)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	out, err := cmd.Output()
	wall := time.Since(t0)
	if !keep {
		os.Remove(path)
	}
	if err != nil {
		return fmt.Errorf("judge %d messages: %w", n, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return errors.New("no resource usage for the child on this system")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	records, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	fmt.Printf("%-10d %10.0f %10.2f %8.2f %8.0f %12s\n", n, float64(st.Size())/(1<<20), wall.Seconds(), cpu.Seconds(), float64(ru.Maxrss)/1024, records)
	return nil
}
