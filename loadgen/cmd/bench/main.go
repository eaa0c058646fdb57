// Command bench measures the mailchaos SMTP sender against Postfix's
// smtp-source, both sending to Postfix's smtp-sink on loopback with the same
// session count, message size and message count, side by side in one run
// (interleaved, -runs times each, medians), and the open model's rate
// accuracy against smtp-sink. It prints
//
//	loadgen_vs_smtp_source <ours msgs/s over theirs>
//	open_model_rate_error <percent>
//
// It is driven by `make bench-loadgen`, which fetches smtp-source and
// smtp-sink from Debian's postfix package into a cache directory first.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/history"
	"github.com/mailchaos/mailchaos/loadgen/smtpload"
)

func main() {
	var (
		postfix    = flag.String("postfix", ".cache/postfix", "directory the postfix package was extracted into (usr/sbin, usr/lib/postfix)")
		sessions   = flag.Int("sessions", 8, "parallel SMTP sessions")
		size       = flag.Int("size", 10240, "message payload bytes (smtp-source -l); our messages are sized to the same total")
		count      = flag.Int("count", 5000, "messages per run")
		runs       = flag.Int("runs", 3, "runs of each sender (medians are reported)")
		openRate   = flag.Float64("open-rate", 2000, "open-model arrival rate, messages/s")
		openDur    = flag.Duration("open-duration", 5*time.Second, "open-model run length")
		openWorker = flag.Int("open-workers", 256, "open-model senders")
		timeout    = flag.Duration("timeout", 5*time.Minute, "bound on the whole benchmark")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the benchmark here")
	)
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *postfix, *sessions, *size, *count, *runs, *openRate, *openDur, *openWorker); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type sink struct {
	addr string
	cmd  *exec.Cmd
}

// startSink runs smtp-sink on a free loopback port and waits until it accepts.
func startSink(ctx context.Context, dir string) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"-4", "-m", "1000"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, addr, "1000")
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "usr/sbin/smtp-sink"), args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(dir, "usr/lib/postfix"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start smtp-sink: %w", err)
	}
	s := &sink{addr: addr, cmd: cmd}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("smtp-sink on %s not accepting: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *sink) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// theirs runs smtp-source and returns messages/s and its CPU time per
// message.
func theirs(ctx context.Context, dir, addr string, sessions, size, count int) (float64, time.Duration, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "usr/sbin/smtp-source"), "-4", "-d",
		"-s", fmt.Sprint(sessions), "-m", fmt.Sprint(count), "-l", fmt.Sprint(size),
		"-f", "user0001@example.test", "-t", "user0002@example.test", "-M", "loadgen.mailchaos.test", addr)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(dir, "usr/lib/postfix"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("smtp-source: %w: %s", err, out)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return float64(count) / el.Seconds(), cpu / time.Duration(count), nil
}

func newSenders(addr string, n, perSession int, gen *corpus.Generator, w *history.Writer, stats *smtpload.Stats) []*smtpload.Sender {
	out := make([]*smtpload.Sender, n)
	for i := range out {
		out[i] = smtpload.NewSender(smtpload.SenderConfig{
			Name: fmt.Sprintf("smtp-%d", i+1), Endpoint: smtpload.Endpoint{Addr: addr},
			User: smtpload.User{Address: "user0001@example.test"}, Corpus: gen,
			MsgsPerSession: perSession, Recorder: w, Stats: stats, Seed: 1,
		})
	}
	return out
}

// setup makes a fixed-size corpus and a history file for one run of ours.
func setup(tmp string, run, size int) (*corpus.Generator, *history.Writer, error) {
	gen, err := corpus.New(corpus.Options{
		Seed: int64(run), RunID: fmt.Sprintf("bench-%d", run), Recipients: []string{"user0002@example.test"},
		// smtp-source's headers are about 200 bytes on top of its payload.
		Sigma: -1, MedianSize: size + 200, MinSize: 1024, MaxSize: max(size+200, 1024), MaxRecipients: 1,
	})
	if err != nil {
		return nil, nil, err
	}
	w, err := history.Create(filepath.Join(tmp, fmt.Sprintf("bench-%d.jsonl", run)), history.NewClock(), history.Header{RunID: fmt.Sprintf("bench-%d", run), Seed: int64(run)})
	return gen, w, err
}

// ours runs the closed model with the same sessions and count; messages/s,
// bytes per message and CPU time per message (message generation included).
func ours(ctx context.Context, tmp, addr string, run, sessions, size, count int) (float64, int64, time.Duration, error) {
	gen, w, err := setup(tmp, run, size)
	if err != nil {
		return 0, 0, 0, err
	}
	defer w.Close()
	stats := &smtpload.Stats{}
	cpu0 := cpuTime()
	res, err := smtpload.RunClosed(ctx, smtpload.ClosedConfig{Duration: time.Minute, MaxMessages: count},
		newSenders(addr, sessions, count, gen, w, stats))
	cpu := cpuTime() - cpu0
	if err != nil {
		return 0, 0, 0, err
	}
	s := stats.Snapshot()
	if s.Accepted != int64(count) {
		return 0, 0, 0, fmt.Errorf("ours: %d of %d accepted (%d failed)", s.Accepted, count, s.Failed+s.Indeterminate)
	}
	return float64(count) / res.Elapsed.Seconds(), s.Bytes / s.Accepted, cpu / time.Duration(count), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRates(v []float64) string {
	var p []string
	for _, x := range v {
		p = append(p, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(p, " ")
}

func run(ctx context.Context, dir string, sessions, size, count, runs int, rate float64, dur time.Duration, workers int) error {
	for _, b := range []string{"usr/sbin/smtp-source", "usr/sbin/smtp-sink"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("find %s: %w (run make bench-loadgen to fetch it)", b, err)
		}
	}
	tmp, err := os.MkdirTemp("", "mailchaos-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sk, err := startSink(ctx, dir)
	if err != nil {
		return err
	}
	defer sk.stop()
	fmt.Printf("# smtp-sink on %s; %d sessions, %d messages of %d payload bytes, %d runs each, interleaved\n", sk.addr, sessions, count, size, runs)

	var us, them, usCPU, themCPU []float64
	var ourBytes int64
	for r := 1; r <= runs; r++ {
		o, b, oc, err := ours(ctx, tmp, sk.addr, r, sessions, size, count)
		if err != nil {
			return err
		}
		t, tc, err := theirs(ctx, dir, sk.addr, sessions, size, count)
		if err != nil {
			return err
		}
		us, them, ourBytes = append(us, o), append(them, t), b
		usCPU, themCPU = append(usCPU, float64(oc.Microseconds())), append(themCPU, float64(tc.Microseconds()))
		fmt.Printf("# run %d: mailchaos %.0f msgs/s (%v CPU/msg), smtp-source %.0f msgs/s (%v CPU/msg)\n", r, o, oc.Round(time.Microsecond), t, tc.Round(time.Microsecond))
	}
	fmt.Printf("# mailchaos msgs/s: %s (median %.0f, %d bytes/message incl. headers; median CPU %.0fµs/msg incl. message generation)\n", fmtRates(us), median(us), ourBytes, median(usCPU))
	fmt.Printf("# smtp-source msgs/s: %s (median %.0f, %d payload bytes + headers; median CPU %.0fµs/msg)\n", fmtRates(them), median(them), size, median(themCPU))
	fmt.Printf("loadgen_vs_smtp_source %.3f\n", median(us)/median(them))

	// Open model at a fixed arrival rate.
	gen, w, err := setup(tmp, 100, size)
	if err != nil {
		return err
	}
	defer w.Close()
	stats := &smtpload.Stats{}
	res, err := smtpload.RunOpen(ctx, smtpload.OpenConfig{Schedule: smtpload.Constant(rate, dur)},
		newSenders(sk.addr, workers, 1<<20, gen, w, stats))
	if err != nil {
		return err
	}
	s := stats.Snapshot()
	want := rate * dur.Seconds()
	achieved := float64(s.Accepted) / dur.Seconds()
	errPct := 100 * abs(float64(s.Accepted)-want) / want
	fmt.Printf("# open model: %d of %d sessions opened in %v before the first arrival\n", res.Warm, workers, res.Warmup.Round(time.Millisecond))
	fmt.Printf("# open model: asked %.0f msgs/s for %v with %d senders: %d ticks, %d dispatched, %d accepted, %d dropped ticks, %d failed; achieved %.1f msgs/s (dispatch window %v)\n",
		rate, dur, workers, res.Ticks, res.Dispatched, s.Accepted, res.Dropped, s.Failed+s.Indeterminate, achieved, res.Elapsed.Round(time.Millisecond))
	fmt.Printf("open_model_dropped_ticks %d\n", res.Dropped)
	fmt.Printf("open_model_rate_error %.2f\n", errPct)
	return nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
