package check

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history/synth"
)

// genHistory writes the synthetic history of n messages (history/synth).
func genHistory(w io.Writer, n int) error { return synth.Generate(w, n) }

var (
	benchMu    sync.Mutex
	benchFiles = map[int]string{}
	benchDir   string
)

// benchHistory generates the n-message history once per test binary.
func benchHistory(tb testing.TB, n int) string {
	benchMu.Lock()
	defer benchMu.Unlock()
	if p, ok := benchFiles[n]; ok {
		return p
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "mailchaos-check-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		benchDir = d
	}
	p := filepath.Join(benchDir, fmt.Sprintf("history-%d.jsonl", n))
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	if err := genHistory(f, n); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	benchFiles[n] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSS returns VmHWM in bytes after resetting it with clear_refs (Linux).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkCheckMillion checks generated histories of 100k and 1M messages
// (run it with -benchmem; sizes side by side show the growth).
func BenchmarkCheckMillion(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			p := benchHistory(b, n)
			st, _ := os.Stat(p)
			runtime.GC()
			resetPeakRSS()
			b.ReportAllocs()
			cpu0 := cpuSeconds()
			b.ResetTimer()
			var v Verdict
			for range b.N {
				var err error
				v, err = Run(context.Background(), p, Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// The machine is shared: CPU seconds per op tell the cost when
			// the wall clock (ns/op) is inflated by other load.
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
			if v.Status != Success || v.Ledger.Counts[ClassOK]+v.Ledger.Counts[ClassRecovered] != int64(n) {
				b.Fatalf("verdict %s: %s; counts %v", v.Status, v.Reason, v.Ledger.Counts)
			}
			b.ReportMetric(peakRSS()/(1<<20), "peakRSS-MiB")
			b.ReportMetric(float64(v.Records), "records")
			b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
		})
	}
}
