package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// binEnv names a mailchaos binary for TestTamperTable to run (make
// tamper-table passes bin/mailchaos); without it the test builds one.
const binEnv = "MAILCHAOS_BIN"

// maxVerifyRSS bounds the peak memory of any verify, crafted bundles
// included: the limits (evidence.DefaultLimits) are what keep it there.
const maxVerifyRSS = 100 << 20

// TestTamperTable runs `mailchaos verify` as a child process on every
// tamper case and prints the table the README quotes: the exit code, the
// first line of output and the child's peak resident memory (ru_maxrss of
// wait4). The child is started by testdata/spawn, a process of a few MiB:
// on Linux a child's ru_maxrss is never below the peak RSS of the process
// that started it, and this test process is tens of MiB. make tamper-table
// prints the table.
func TestTamperTable(t *testing.T) {
	if testing.Short() {
		t.Skip("verifies two 500 MB crafted bundles")
	}
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read the Linux way (ru_maxrss in KiB, /proc/self/status)")
	}
	bin := os.Getenv(binEnv)
	if bin == "" {
		bin = buildMailchaos(t)
	}
	spawn := filepath.Join(t.TempDir(), "spawn")
	if out, err := exec.Command("go", "build", "-o", spawn, "./testdata/spawn").CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/spawn: %v\n%s", err, out)
	}
	var rows []string
	var floor int64
	for _, tc := range tamperCases {
		dir := setupCase(t, tc)
		report := filepath.Join(t.TempDir(), "report")
		cmd := exec.Command(spawn, append([]string{report, bin, "verify"}, tc.args...)...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if tc.interrupted {
			// Ctrl-C once the child is busy reading: it must stop, not finish.
			time.Sleep(500 * time.Millisecond)
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: spawn: %v\n%s", tc.name, err, head(errb.String()))
		}
		took := time.Since(start)
		var code int
		var rssKiB, spawnKiB int64
		b, err := os.ReadFile(report)
		if _, serr := fmt.Sscanf(string(b), "%d %d %d", &code, &rssKiB, &spawnKiB); err != nil || serr != nil {
			t.Fatalf("%s: spawn's report %q: %v %v", tc.name, b, err, serr)
		}
		floor = max(floor, spawnKiB)
		checkCase(t, tc, code, out.String(), errb.String())
		if rss := rssKiB << 10; rss > maxVerifyRSS {
			t.Errorf("%s: peak RSS %s, more than %s", tc.name, mib(rss), mib(maxVerifyRSS))
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | `%s` | %s | %.1f s |", tc.name, code, clip(firstLine(out.String(), errb.String()), 100), mib(rssKiB<<10), took.Seconds()))
	}
	fmt.Println("| case | exit | first line | peak RSS | time |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Println(r)
	}
	fmt.Printf("peak RSS is the verify's own: its spawner peaked at %s\n", mib(floor<<10))
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func mib(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
