package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// mailchaos run --parallel N runs the parts scenarios.Split makes, each in
// a process of this same binary (run --part i --scenario <its scenarios>),
// into one run folder. The parts' output comes through here, each line
// prefixed with its part; when every part has ended, scenarios.Conclude
// writes the run's status, reports, manifest and bundle from the parts.
//
// Signals keep the meaning they have for a run in one process. The parts
// run in process groups of their own, so that a Ctrl-C on the terminal
// reaches them once, through here: each signal is passed on to every
// part. The first makes each part stop in order (heal, save logs, tear
// down, judge what it recorded: exit code 2 with the report); the second
// makes each remove its stacks at once (exit code 130, status.json only);
// a third exits at once. A part whose parent dies gets SIGTERM (Linux) and
// stops in order.

// partFlag is the hidden flag that makes a run process one part of a
// parallel run; it is for the parent to pass, not for people.
const partFlag = "part"

// notForParts are the flags of run that the parent sets itself for each
// part, or that only the parent acts on.
var notForParts = map[string]bool{
	"parallel": true, partFlag: true, "scenario": true, "scenario-file": true, "label": true,
	"run-id": true, "seed": true, "progress": true, "clean-stale": true, "list": true, "sign-key": true,
}

// partArgs are the arguments of run for part i of the run p, whose
// scenarios are names: every flag given to the parent but those the parent
// sets per part, then those.
func partArgs(fs *flag.FlagSet, p flow.Params, i int, names []string) []string {
	args := []string{"run"}
	fs.Visit(func(f *flag.Flag) {
		if !notForParts[f.Name] {
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	for _, f := range p.ScenarioFiles {
		args = append(args, "--scenario-file="+f)
	}
	progress := "log" // a part's output is a pipe: log lines, never a live line
	if p.Progress == "off" {
		progress = "off"
	}
	return append(args, "--run-id="+p.RunID, "--seed="+strconv.FormatInt(p.Seed, 10), "--label="+p.Label,
		"--scenario="+strings.Join(names, ","), "--progress="+progress, "--"+partFlag+"="+strconv.Itoa(i))
}

// partProc is one running part.
type partProc struct {
	n     int
	names []string
	cmd   *exec.Cmd
	exit  int // when ended: its exit code (-1: killed by a signal)
	err   error
	done  atomic.Bool
}

// live says whether the part's process runs (started, not yet waited for).
func (pp *partProc) live() bool { return pp.cmd != nil && pp.cmd.Process != nil && !pp.done.Load() }

// runParallel runs parts, the scenarios of run p split, each in its own
// process, and concludes the run from them. fs holds the flags the parent
// was given.
func runParallel(fs *flag.FlagSet, p flow.Params, parts [][]flow.Scenario, stdout, stderr io.Writer) flow.Status {
	start := time.Now()
	var plan []string
	for i, part := range parts {
		plan = append(plan, fmt.Sprintf("part %d: %s", i+1, strings.Join(namesOf(part), ",")))
	}
	fmt.Fprintf(stderr, "mailchaos run %s: seed %d, label %q, stack %s, %d scenarios at once (%s), out %s\n",
		p.RunID, p.Seed, p.Label, p.Stack, len(parts), strings.Join(plan, "; "), p.RunDir())

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	exe, err := os.Executable()
	var out lineWriter
	out.mu = new(sync.Mutex)
	procs := make([]*partProc, len(parts))
	ended := make(chan *partProc, len(parts))
	running := 0
	for i, part := range parts {
		pp := &partProc{n: i + 1, names: namesOf(part)}
		procs[i] = pp
		if err != nil {
			pp.exit, pp.err = -1, fmt.Errorf("find the mailchaos binary: %w", err)
			continue
		}
		pp.cmd = exec.Command(exe, partArgs(fs, p, pp.n, pp.names)...)
		pp.cmd.SysProcAttr = partProcAttr()
		prefix := fmt.Sprintf("[part %d] ", pp.n)
		var wg sync.WaitGroup
		outR, e1 := pp.cmd.StdoutPipe()
		errR, e2 := pp.cmd.StderrPipe()
		if e1 != nil || e2 != nil {
			pp.exit, pp.err = -1, fmt.Errorf("start part %d: %v", pp.n, cmpErr(e1, e2))
			continue
		}
		if err := pp.cmd.Start(); err != nil {
			pp.exit, pp.err = -1, fmt.Errorf("start part %d: %w", pp.n, err)
			continue
		}
		running++
		wg.Add(2)
		go func() { defer wg.Done(); out.copy(stdout, outR, prefix) }()
		go func() { defer wg.Done(); out.copy(stderr, errR, prefix) }()
		go func() {
			wg.Wait() // the pipes first: Wait closes them
			err := pp.cmd.Wait()
			pp.exit = pp.cmd.ProcessState.ExitCode()
			if err != nil && pp.exit < 0 {
				pp.err = err
			}
			pp.done.Store(true)
			ended <- pp
		}()
	}

	signals, abandoned := 0, false
	hung := time.NewTimer(p.Timeout + partsHungAfter)
	defer hung.Stop()
	for running > 0 {
		select {
		case pp := <-ended:
			running--
			fmt.Fprintf(stderr, "mailchaos: part %d (%s) ended with exit code %d\n", pp.n, strings.Join(pp.names, ","), pp.exit)
		case sig := <-sigs:
			signals++
			forward(procs, sig)
			switch signals {
			case 1:
				fmt.Fprintf(stderr, "mailchaos: %v: passed to the %d running part(s): each stops in order (heal every fault, save logs, tear down, judge what it recorded); signal again to remove the stacks at once and exit\n", sig, running)
			case 2:
				abandoned = true
				fmt.Fprintf(stderr, "mailchaos: %v again: passed on: each part removes its stacks at once (no logs) and exits; signal again to exit now\n", sig)
				hung.Reset(abandonWait)
			default:
				os.Exit(flow.ExitInterrupted)
			}
		case <-hung.C:
			fmt.Fprintf(stderr, "mailchaos: %d part(s) still running past their bound: killing them and removing their stacks\n", running)
			for _, pp := range procs {
				if pp.live() {
					_ = pp.cmd.Process.Kill()
				}
			}
			hung.Reset(time.Hour) // the kills end them; ended counts them down
		}
	}

	results := make([]scenarios.Part, len(parts))
	for i, pp := range procs {
		part, err := scenarios.ReadPart(p, pp.n)
		if err != nil {
			why := fmt.Sprintf("part %d (%s) ended with exit code %d without its outcome", pp.n, strings.Join(pp.names, ","), pp.exit)
			if pp.err != nil {
				why += ": " + pp.err.Error()
			}
			part = scenarios.LostPart(parts[i], why)
			cleanLost(stderr, p, pp.names)
		}
		results[i] = part
	}
	return scenarios.Conclude(p, start, results, abandoned)
}

// partsHungAfter is how long past --timeout the parent waits for its parts:
// their own watchdog acts earlier (a part in one process' bound), so a
// part still running then is stuck beyond its watchdog.
const partsHungAfter = scenarios.TeardownAllowance + flow.HealTimeout + flow.TeardownTimeout + flow.CheckTimeout + 3*time.Minute

// abandonWait bounds the parts' removal of their stacks after a second
// signal (the harness gives it 45 s).
const abandonWait = time.Minute

// forward passes sig to every part still running.
func forward(procs []*partProc, sig os.Signal) {
	for _, pp := range procs {
		if pp.live() {
			_ = pp.cmd.Process.Signal(sig)
		}
	}
}

// cleanLost removes what a part that ended without its outcome left of its
// scenarios' stacks (its process is gone, so they are stale).
func cleanLost(w io.Writer, p flow.Params, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), flow.TeardownTimeout)
	defer cancel()
	for _, n := range names {
		res, err := harness.Clean(ctx, harness.CleanOptions{Run: flow.StackRunID(p.RunID, n)})
		if len(res.Runs) > 0 || err != nil {
			printClean(w, flow.StackRunID(p.RunID, n), res)
		}
		if err != nil {
			fmt.Fprintf(w, "mailchaos: clean %s: %v\n", flow.StackRunID(p.RunID, n), err)
		}
	}
}

func namesOf(scs []flow.Scenario) []string {
	var names []string
	for _, s := range scs {
		names = append(names, s.Name)
	}
	return names
}

func cmpErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// lineWriter copies the parts' output line by line, each line prefixed
// with its part, so that the parts' lines never interleave mid-line.
type lineWriter struct{ mu *sync.Mutex }

func (lw lineWriter) copy(w io.Writer, r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		lw.mu.Lock()
		fmt.Fprintf(w, "%s%s\n", prefix, sc.Bytes())
		lw.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line past the buffer: keep the part from blocking
}
