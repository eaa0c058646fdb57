// Command bench measures the mailchaos SMTP sender against Postfix's
// smtp-source, both sending to Postfix's smtp-sink on loopback with the same
// session count, message size and message count, and the open model's rate
// accuracy against smtp-sink.
//
// The machine it runs on is usually shared, so every figure is taken in
// rounds and reported as a median, with the load average beside it. In each
// round both tools run back to back (which one goes first alternates), so a
// change in the machine's load hits both alike. Besides messages/s, which
// moves with the load, it reports the CPU time each tool spends per message
// (getrusage: of this process for ours, of the smtp-source child for
// theirs), which moves much less, and the CPU time smtp-sink spent serving
// each tool. It prints
//
//	loadgen_vs_smtp_source <median msgs/s ours over median theirs>
//	loadgen_cpu_us_per_msg <median CPU µs per message, ours>
//	smtp_source_cpu_us_per_msg <median CPU µs per message, theirs>
//	loadgen_cpu_vs_smtp_source <ours over theirs; lower is better>
//	open_model_dropped_ticks <median>
//	open_model_rate_error <median percent>
//	open_model_cpu_us_per_msg <median CPU µs per accepted message>
//	open_model_run_queue_wait_pct <median time our threads waited for a CPU, % of the run>
//
// For the open model it also says what starved the senders when arrivals
// were dropped: sends starting late, the process waiting for a CPU
// (run-queue time from /proc/self/task/*/schedstat), goroutines waiting for
// a thread (the runtime's scheduling latency).
//
// It is driven by `make bench-loadgen`, which fetches smtp-source and
// smtp-sink from Debian's postfix package into a cache directory first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/corpus"
	"github.com/mailchaos/mailchaos/loadgen/smtpload"
)

// config is what the flags set.
type config struct {
	postfix                   string
	sessions, size, count     int
	rounds, warmup            int
	openRate                  float64
	openDur                   time.Duration
	openWorkers, openRounds   int
	skipClosed, skipOpenModel bool
	onlyOurs                  bool
}

func main() {
	var c config
	flag.StringVar(&c.postfix, "postfix", ".cache/postfix", "directory the postfix package was extracted into (usr/sbin, usr/lib/postfix)")
	flag.IntVar(&c.sessions, "sessions", 8, "parallel SMTP sessions")
	flag.IntVar(&c.size, "size", 10240, "message payload bytes (smtp-source -l); our messages are sized to the same total")
	flag.IntVar(&c.count, "count", 5000, "messages per run")
	flag.IntVar(&c.rounds, "runs", 5, "rounds; each runs both senders once (medians are reported)")
	flag.IntVar(&c.warmup, "warmup", 1000, "messages each sender sends once, unmeasured, before the rounds")
	flag.Float64Var(&c.openRate, "open-rate", 2000, "open-model arrival rate, messages/s")
	flag.DurationVar(&c.openDur, "open-duration", 5*time.Second, "open-model run length")
	flag.IntVar(&c.openWorkers, "open-workers", 256, "open-model senders")
	flag.IntVar(&c.openRounds, "open-runs", 3, "open-model runs (medians are reported)")
	flag.BoolVar(&c.skipClosed, "no-closed", false, "skip the comparison with smtp-source")
	flag.BoolVar(&c.skipOpenModel, "no-open", false, "skip the open model")
	flag.BoolVar(&c.onlyOurs, "only-ours", false, "run only our sender in the comparison rounds (for profiling and tracing it)")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound on the whole benchmark")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the benchmark here")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the benchmark here")
	flag.Parse()
	// The open model runs last: a rate it would refuse is refused before
	// minutes of comparison rounds.
	if !c.skipOpenModel {
		err := smtpload.Constant(c.openRate, c.openDur).Validate()
		if err == nil && c.openRate == 0 {
			err = errors.New("rate 0")
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -open-rate %v -open-duration %v: %s; want a finite rate above 0 for a duration above 0\n",
				c.openRate, c.openDur, strings.ReplaceAll(err.Error(), "\n", "; "))
			os.Exit(2)
		}
	}
	if err := profiled(*cpuprofile, *memprofile, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		return run(ctx, c)
	}); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// profiled runs f under the CPU profile and writes the allocation profile
// after it, when asked for.
func profiled(cpuprofile, memprofile string, f func() error) error {
	if cpuprofile != "" {
		out, err := os.Create(cpuprofile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if memprofile != "" {
		runtime.MemProfileRate = 4096
	}
	if err := f(); err != nil {
		return err
	}
	if memprofile != "" {
		out, err := os.Create(memprofile)
		if err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		defer out.Close()
		return pprof.Lookup("allocs").WriteTo(out, 0)
	}
	return nil
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

// cpu returns the CPU time smtp-sink has used so far.
func (s *sink) cpu() time.Duration {
	cpu, _ := schedstat(s.cmd.Process.Pid)
	return cpu
}

// schedstat sums, over the threads of process pid, the time spent on a CPU
// and the time spent runnable waiting for one (/proc/PID/task/*/schedstat,
// in nanoseconds). Threads that have exited are not counted.
func schedstat(pid int) (onCPU, waiting time.Duration) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		run, _ := strconv.ParseInt(f[0], 10, 64)
		wait, _ := strconv.ParseInt(f[1], 10, 64)
		onCPU += time.Duration(run)
		waiting += time.Duration(wait)
	}
	return onCPU, waiting
}

// loadavg returns the 1-minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sample is one run of one sender.
type sample struct {
	rate    float64       // messages/s
	cpu     time.Duration // sender CPU per message
	sinkCPU time.Duration // smtp-sink CPU per message
}

// theirs runs smtp-source for count messages.
func theirs(ctx context.Context, dir string, sk *sink, sessions, size, count int) (sample, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "usr/sbin/smtp-source"), "-4", "-d",
		"-s", fmt.Sprint(sessions), "-m", fmt.Sprint(count), "-l", fmt.Sprint(size),
		"-f", "user0001@example.test", "-t", "user0002@example.test", "-M", "loadgen.mailchaos.test", sk.addr)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(dir, "usr/lib/postfix"))
	sink0 := sk.cpu()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("smtp-source: %w: %s", err, out)
	}
	n := time.Duration(count)
	return sample{
		rate:    float64(count) / el.Seconds(),
		cpu:     (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) / n,
		sinkCPU: (sk.cpu() - sink0) / n,
	}, nil
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

// ours runs the closed model with the same sessions and count, and returns
// the sample and the bytes per message. CPU time is the whole process's
// (message generation, the history and the runtime included).
func ours(ctx context.Context, tmp string, sk *sink, run, sessions, size, count int) (sample, int64, error) {
	gen, w, err := setup(tmp, run, size)
	if err != nil {
		return sample{}, 0, err
	}
	defer w.Close()
	stats := &smtpload.Stats{}
	senders := newSenders(sk.addr, sessions, count, gen, w, stats)
	runtime.GC() // the previous run's garbage is not this run's cost
	sink0, cpu0 := sk.cpu(), cpuTime()
	res, err := smtpload.RunClosed(ctx, smtpload.ClosedConfig{Duration: time.Minute, MaxMessages: count}, senders)
	if err == nil {
		err = w.Close()
	}
	cpu, sinkCPU := cpuTime()-cpu0, sk.cpu()-sink0
	if err != nil {
		return sample{}, 0, err
	}
	s := stats.Snapshot()
	if s.Accepted != int64(count) {
		return sample{}, 0, fmt.Errorf("ours: %d of %d accepted (%d failed)", s.Accepted, count, s.Failed+s.Indeterminate)
	}
	n := time.Duration(count)
	return sample{rate: float64(count) / res.Elapsed.Seconds(), cpu: cpu / n, sinkCPU: sinkCPU / n}, s.Bytes / s.Accepted, nil
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func list[T any](v []T, format func(T) string) string {
	var p []string
	for _, x := range v {
		p = append(p, format(x))
	}
	return strings.Join(p, " ")
}

func rate(x float64) string         { return fmt.Sprintf("%.0f", x) }
func micros(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }

func run(ctx context.Context, c config) error {
	for _, b := range []string{"usr/sbin/smtp-source", "usr/sbin/smtp-sink"} {
		if _, err := os.Stat(filepath.Join(c.postfix, b)); err != nil {
			return fmt.Errorf("find %s: %w (run make bench-loadgen to fetch it)", b, err)
		}
	}
	tmp, err := os.MkdirTemp("", "mailchaos-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sk, err := startSink(ctx, c.postfix)
	if err != nil {
		return err
	}
	defer sk.stop()
	fmt.Printf("# %d CPUs, GOMAXPROCS %d; load average %s at start\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg())
	if !c.skipClosed {
		if err := compare(ctx, c, tmp, sk); err != nil {
			return err
		}
	}
	if !c.skipOpenModel {
		if err := openModel(ctx, c, tmp, sk); err != nil {
			return err
		}
	}
	fmt.Printf("load_average %s\n", loadavg())
	return nil
}

// sender is one side of the comparison: how to run it once, and its
// samples.
type sender struct {
	name, what string
	run        func(round, count int) (sample, error)
	samples    []sample
}

func (s *sender) rates() []float64 {
	out := make([]float64, len(s.samples))
	for i, x := range s.samples {
		out[i] = x.rate
	}
	return out
}

func (s *sender) durations(f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(s.samples))
	for i, x := range s.samples {
		out[i] = f(x)
	}
	return out
}

func cpuOf(s sample) time.Duration  { return s.cpu }
func sinkOf(s sample) time.Duration { return s.sinkCPU }

// compare runs both senders in interleaved rounds and prints the medians.
func compare(ctx context.Context, c config, tmp string, sk *sink) error {
	var ourBytes int64
	us := &sender{name: "mailchaos", run: func(round, count int) (sample, error) {
		s, b, err := ours(ctx, tmp, sk, round, c.sessions, c.size, count)
		ourBytes = b
		return s, err
	}}
	them := &sender{name: "smtp-source", what: fmt.Sprintf("%d payload bytes + headers", c.size), run: func(_, count int) (sample, error) {
		return theirs(ctx, c.postfix, sk, c.sessions, c.size, count)
	}}
	senders := []*sender{us, them}
	if c.onlyOurs {
		senders = senders[:1]
	}
	fmt.Printf("# smtp-sink on %s; %d sessions, %d messages of %d payload bytes; %d rounds, each sender once a round, the first alternating\n",
		sk.addr, c.sessions, c.count, c.size, c.rounds)
	if c.warmup > 0 {
		for _, s := range senders {
			if _, err := s.run(1000, c.warmup); err != nil {
				return fmt.Errorf("warm-up of %s: %w", s.name, err)
			}
		}
	}
	for r := 1; r <= c.rounds; r++ {
		line := fmt.Sprintf("# round %d (load %s):", r, loadavg())
		order := slices.Clone(senders)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, s := range order {
			x, err := s.run(r, c.count)
			if err != nil {
				return err
			}
			s.samples = append(s.samples, x)
		}
		for _, s := range senders {
			x := s.samples[len(s.samples)-1]
			line += fmt.Sprintf(" %s %.0f msgs/s, %s µs CPU/msg (sink %s µs/msg);", s.name, x.rate, micros(x.cpu), micros(x.sinkCPU))
		}
		fmt.Println(strings.TrimSuffix(line, ";"))
	}
	us.what = fmt.Sprintf("%d bytes/message incl. headers; CPU includes message generation", ourBytes)
	for _, s := range senders {
		fmt.Printf("# %s: msgs/s %s (median %.0f); CPU µs/msg %s (median %s); sink CPU µs/msg median %s (%s)\n", s.name,
			list(s.rates(), rate), median(s.rates()), list(s.durations(cpuOf), micros), micros(median(s.durations(cpuOf))),
			micros(median(s.durations(sinkOf))), s.what)
	}
	ourCPU := median(us.durations(cpuOf))
	fmt.Printf("loadgen_cpu_us_per_msg %s\n", micros(ourCPU))
	if c.onlyOurs {
		return nil
	}
	theirCPU := median(them.durations(cpuOf))
	fmt.Printf("smtp_source_cpu_us_per_msg %s\n", micros(theirCPU))
	fmt.Printf("loadgen_vs_smtp_source %.3f\n", median(us.rates())/median(them.rates()))
	fmt.Printf("loadgen_cpu_vs_smtp_source %.3f\n", float64(ourCPU)/float64(theirCPU))
	return nil
}

// schedLatency is the runtime's histogram of how long goroutines waited,
// runnable, for a thread to run them.
func schedLatency() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// quantile returns the q-quantile of the waits recorded between two readings
// of schedLatency (the upper bound of its bucket).
func quantile(before, after *metrics.Float64Histogram, q float64) time.Duration {
	if before == nil || after == nil {
		return 0
	}
	var total uint64
	for i := range after.Counts {
		total += after.Counts[i] - before.Counts[i]
	}
	var seen uint64
	for i := range after.Counts {
		seen += after.Counts[i] - before.Counts[i]
		if total > 0 && float64(seen) >= q*float64(total) {
			return time.Duration(after.Buckets[i+1] * float64(time.Second))
		}
	}
	return 0
}

// openModel runs the open model at a fixed arrival rate, several times, and
// prints the medians of its dropped ticks and rate error, with what explains
// them.
func openModel(ctx context.Context, c config, tmp string, sk *sink) error {
	var drops []int64
	var errs, waits []float64
	var cpus []time.Duration
	for r := 1; r <= c.openRounds; r++ {
		gen, w, err := setup(tmp, 100+r, c.size)
		if err != nil {
			return err
		}
		stats := &smtpload.Stats{}
		senders := newSenders(sk.addr, c.openWorkers, 1<<20, gen, w, stats)
		load := loadavg()
		runtime.GC()
		cpu0, lat0 := cpuTime(), schedLatency()
		_, wait0 := schedstat(os.Getpid())
		start := time.Now()
		res, err := smtpload.RunOpen(ctx, smtpload.OpenConfig{Schedule: smtpload.Constant(c.openRate, c.openDur)}, senders)
		if err == nil {
			err = w.Close()
		}
		el := time.Since(start) // warm-up included, as in the CPU and wait figures
		cpu, lat1 := cpuTime()-cpu0, schedLatency()
		_, wait1 := schedstat(os.Getpid())
		if err != nil {
			return err
		}
		s := stats.Snapshot()
		want := c.openRate * c.openDur.Seconds()
		errPct := 100 * abs(float64(s.Accepted)-want) / want
		cpuPerMsg, waitPct := cpu/time.Duration(max(s.Accepted, 1)), 100*(wait1-wait0).Seconds()/el.Seconds()
		drops, errs, cpus, waits = append(drops, res.Dropped), append(errs, errPct), append(cpus, cpuPerMsg), append(waits, waitPct)
		fmt.Printf("# open model %d (load %s): asked %.0f msgs/s for %v with %d senders (%d warm in %v): %d ticks, %d dispatched, %d accepted, %d failed; achieved %.1f msgs/s, error %.2f%%\n",
			r, load, c.openRate, c.openDur, c.openWorkers, res.Warm, res.Warmup.Round(time.Millisecond),
			res.Ticks, res.Dispatched, s.Accepted, s.Failed+s.Indeterminate, float64(s.Accepted)/c.openDur.Seconds(), errPct)
		fmt.Printf("#   dropped %d (no sender free when due); %d sends started over %v late, worst %v; process CPU %.0f%% of one core (%s µs/msg), threads waiting for a CPU %v (summed over threads, %.0f%% of the run), goroutine scheduling latency p99 %v\n",
			res.Dropped, res.Late, smtpload.LateAfter, res.MaxLag.Round(time.Microsecond),
			100*cpu.Seconds()/el.Seconds(), micros(cpuPerMsg), (wait1 - wait0).Round(time.Millisecond), waitPct,
			quantile(lat0, lat1, 0.99).Round(time.Microsecond))
	}
	fmt.Printf("open_model_dropped_ticks %d\n", median(drops))
	fmt.Printf("open_model_rate_error %.2f\n", median(errs))
	fmt.Printf("open_model_cpu_us_per_msg %s\n", micros(median(cpus)))
	// Time the process's threads spent runnable but without a CPU, summed
	// over threads, as a share of the run: far above 0, the machine was
	// starving the generator and the rate error measures the machine.
	fmt.Printf("open_model_run_queue_wait_pct %.0f\n", median(waits))
	return nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
