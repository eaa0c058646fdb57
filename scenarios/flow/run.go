package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
)

// Bounds of the phases that do not scale with the parameters. Every wait of
// a run is bounded by one of these or by a parameter.
const (
	UpTimeout       = 5 * time.Minute // harness.Up, images present
	TeardownTimeout = 3 * time.Minute // harness Teardown, logs included
	HealTimeout     = 4 * time.Minute // heal every fault and see every node ready
	ReadTimeout     = 5 * time.Minute // one final-read round of every mailbox, or one replica read
	// FinalReadTimeout bounds the final-read phase: two rounds and the
	// reads of two replicas at ReadTimeout each (a stack with more
	// replicas shares it out, see ReadBound).
	FinalReadTimeout = 4*ReadTimeout + RoundGap
	CheckTimeout     = 2 * time.Minute  // the checkers over the history
	RoundGap         = 5 * time.Second  // pause between the final-read rounds
	ProbeEvery       = 3 * time.Second  // convergence probe interval
	phaseSlack       = 3 * time.Minute  // beyond a phase's planned length
	steadySettle     = 10 * time.Second // delivery allowance after the steady load
)

// Traffic is what a run needs from the load generator: load for a while,
// with every operation recorded in the history, and complete reads of every
// test mailbox.
type Traffic interface {
	// Load sends mail at the run's rate and watches the mailboxes for d,
	// recording every operation; it returns when the last operation ended.
	Load(ctx context.Context, phase history.Phase, d time.Duration) error
	// FinalRead lists every message of every test mailbox into w as final
	// records, read round round, framed by the final-read phase events
	// (final-read-done only when every mailbox was read). An error means
	// the round is incomplete.
	FinalRead(ctx context.Context, w *history.Writer, round int) error
	// Replicas names the mailbox replicas the stack declares (nil: none).
	Replicas() []string
	// ReadReplica lists every message of every test mailbox on one
	// replica, read directly rather than through the IMAP endpoint, into w
	// as final records carrying the replica's name, framed by the
	// replica-read phase events. An error means the read is incomplete.
	ReadReplica(ctx context.Context, w *history.Writer, name string) error
}

// Run is one scenario being run: the stack, the history, the timeline and,
// at the end, the verdict. Its methods are the phases, called in order by
// the suite; each is bounded and safe to call after an earlier one failed
// (it then reports that it cannot run).
type Run struct {
	P        Params
	S        Scenario
	Dir      string // out/<run>/<scenario>
	Log      *slog.Logger
	Progress *Progress

	// Plan is the scenario resolved against the stack (nil until Start
	// could load the descriptor).
	Plan *Plan
	// Skipped says why the stack cannot serve the scenario ("" when it
	// can): the suite skips it, visibly, and nothing is started.
	Skipped string

	Env      *harness.Env
	History  *history.Writer
	Traffic  Traffic
	Timeline *faults.Timeline
	Steady   check.Verdict
	// TimelineErr is what the fault timeline reported (failed injects,
	// unverified heals); HealProblems what was still broken after Heal.
	TimelineErr  error
	HealProblems []string
	Verdict      check.Verdict
	// Judged is true once Verdict holds the checkers' verdict.
	Judged bool
	// Partial is true when Verdict was judged on a history the run did
	// not finish (a phase failed, or the run was interrupted): it has no
	// done event, so it is never a pass (see JudgePartial).
	Partial bool
	// Started is when the scenario started.
	Started time.Time
	// Images and Software describe the stack as it ran (best effort).
	Images   []ImageRef
	Software []Fact

	logFile  *os.File
	current  string // the phase started last
	failed   map[Step]error
	ok       map[Step]bool
	mu       sync.Mutex
	healOnce sync.Once
}

// Err returns the first harness failure of the run, in phase order, or "".
func (r *Run) Err() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range Steps {
		if err, ok := r.failed[p]; ok {
			return string(p) + ": " + err.Error()
		}
	}
	return ""
}

// Phase returns the phase the run started last ("" before the stack is
// brought up): where an interrupt found it.
func (r *Run) Phase() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// setPhase shows name as the current phase (progress line, Phase).
func (r *Run) setPhase(name string) {
	r.mu.Lock()
	r.current = name
	r.mu.Unlock()
	r.Progress.SetPhase(name)
}

// HistoryPath is the path of the run's history.
func (r *Run) HistoryPath() string { return filepath.Join(r.Dir, "history.jsonl") }

// Start prepares the run of s: its folder, its log, its history. Nothing is
// started in Docker yet.
func Start(p Params, s Scenario, progress *Progress, console io.Writer) (*Run, error) {
	asked := p.Duration
	p.Duration = s.LoadDuration(p.Duration)
	r := &Run{Started: time.Now(), P: p, S: s, Dir: filepath.Join(p.RunDir(), s.Name), Progress: progress, failed: map[Step]error{}, ok: map[Step]bool{}}
	if err := s.Validate(); err != nil {
		return r, err
	}
	// Resolve every target before a file or a container exists: a
	// scenario the stack cannot serve is skipped, one that names what the
	// stack lacks is refused, both in milliseconds.
	plan, err := NewPlan(p, s)
	if err != nil {
		return r, err
	}
	r.Plan = plan
	if r.Skipped = plan.SkipReason(); r.Skipped != "" {
		return r, nil
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return r, fmt.Errorf("create scenario folder: %w", err)
	}
	f, err := os.Create(filepath.Join(r.Dir, "run.log"))
	if err != nil {
		return r, fmt.Errorf("create run log: %w", err)
	}
	r.logFile = f
	out := io.Writer(f)
	if console != nil {
		out = io.MultiWriter(f, console)
	}
	r.Log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("scenario", s.Name)
	h, err := history.Create(r.HistoryPath(), history.NewClock(), history.Header{RunID: p.RunID, Seed: p.Seed, Scenario: s.Name})
	if err != nil {
		return r, err
	}
	r.History = h
	r.Log.Info("scenario start", "run", p.RunID, "seed", p.Seed, "proves", s.Proves, "history", r.HistoryPath())
	if err := r.recordPlan(); err != nil {
		return r, err
	}
	if p.Duration != asked {
		r.Log.Info("load phase lengthened to the scenario's minimum", "duration", p.Duration, "asked", asked)
	}
	r.Progress.Begin(s.Name, r.HistoryPath(), r.Planned())
	return r, nil
}

// Planned is the planned wall time of the scenario (stack start excluded).
func (r *Run) Planned() time.Duration { return planned(r.P) }

func planned(p Params) time.Duration {
	return p.Steady + steadySettle + p.Duration + p.Converge/2 + RoundGap
}

// StackOverhead is what a scenario takes besides its planned phases:
// bringing the stack up, healing, reading and tearing it down (about a
// minute on the reference stack).
const StackOverhead = time.Minute

// PlannedWall is the planned wall time of scenario s under p, its stack's
// set-up and teardown included: what a parallel run balances its parts by.
func PlannedWall(p Params, s Scenario) time.Duration {
	p.Duration = s.LoadDuration(p.Duration)
	return planned(p) + StackOverhead
}

// phase records the start of a phase in the history and the progress line.
func (r *Run) phase(name history.Phase, attempt int, detail string) {
	r.setPhase(string(name))
	if r.History != nil {
		if err := r.History.Phase(name, attempt, detail); err != nil {
			r.Log.Error("record phase", "phase", name, "err", err)
		}
	}
	r.Log.Info("phase", "name", name, "attempt", attempt)
}

// Need fails when a step of steps failed or never ran successfully.
func (r *Run) Need(phases ...Step) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range phases {
		if err, ok := r.failed[p]; ok {
			return fmt.Errorf("cannot run: phase %s failed: %v", p, err)
		}
		if !r.ok[p] {
			return fmt.Errorf("cannot run: phase %s did not run", p)
		}
	}
	return nil
}

func (r *Run) done(phase Step, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed[phase] = err
		r.Log.Error("phase failed", "phase", phase, "err", err)
		return err
	}
	r.ok[phase] = true
	return nil
}

// Up loads the descriptor, applies the rehearsal's image sets and brings
// the stack up; then it connects the load generator and the fault kinds.
func (r *Run) Up(ctx context.Context) error {
	return r.done(StepUp, r.up(ctx))
}

func (r *Run) up(ctx context.Context) error {
	if r.History == nil {
		return errors.New("run not started")
	}
	r.setPhase(string(StepUp))
	if r.Plan == nil {
		return errors.New("scenario not planned")
	}
	d := r.Plan.Descriptor
	ctx, cancel := context.WithTimeout(ctx, UpTimeout)
	defer cancel()
	start := time.Now()
	env, err := harness.Up(ctx, d, harness.Options{
		RunID:  StackRunID(r.P.RunID, r.S.Name),
		OutDir: r.Dir,
		Users:  r.P.Users,
		Logger: r.Log,
		Group:  r.P.RunID,
	})
	r.Env = env // even on error: Teardown removes what was made
	if err != nil {
		return fmt.Errorf("bring the stack up: %w", err)
	}
	r.Log.Info("stack up", "took", time.Since(start).Round(time.Millisecond))
	r.Images, r.Software = StackFacts(ctx, env)
	if r.Traffic, err = NewTraffic(env, r.History, r.P, r.Log); err != nil {
		return err
	}
	return nil
}

// StackRunID is the Docker run id of a scenario's stack: the run id plus
// the scenario, so that every resource of the scenario carries it and two
// scenarios of a run never share a container name.
func StackRunID(runID, scenario string) string { return runID + "-" + scenario }

// ApplyImageSets makes a rehearsal out of a descriptor: the --from set
// replaces the images the stack starts with, the --to set the images it
// upgrades to. A tag applies to every service with an upgrade image.
func ApplyImageSets(d *harness.Descriptor, from, to string) error {
	fs, err := ParseImageSet(from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	ts, err := ParseImageSet(to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	for _, set := range []ImageSet{fs, ts} {
		for svc := range set.Images {
			if _, ok := d.Services[svc]; !ok {
				return fmt.Errorf("image set names service %q, which stack %s does not have", svc, d.Name)
			}
		}
	}
	for name, s := range d.Services {
		if s.UpgradeImage != "" {
			if fs.Tag != "" {
				s.Image = WithTag(s.Image, fs.Tag)
			}
			if ts.Tag != "" {
				s.UpgradeImage = WithTag(s.UpgradeImage, ts.Tag)
			}
		}
		if img, ok := fs.Images[name]; ok {
			s.Image = img
		}
		if img, ok := ts.Images[name]; ok {
			s.UpgradeImage = img
		}
	}
	return nil
}

// SteadyState runs a short clean load and judges it against
// SteadyThresholds. The returned error is a harness failure; a steady state
// that misses its thresholds is a verdict (r.Steady) for the gate to judge.
func (r *Run) SteadyState(ctx context.Context) error {
	if err := r.Need(StepUp); err != nil {
		return err
	}
	return r.done(StepSteady, r.steady(ctx))
}

func (r *Run) steady(ctx context.Context) error {
	r.phase(history.PhaseSteady, 0, "")
	lctx, cancel := context.WithTimeout(ctx, r.P.Steady+phaseSlack)
	defer cancel()
	if err := r.Traffic.Load(lctx, history.PhaseSteady, r.P.Steady); err != nil {
		return fmt.Errorf("steady load: %w", err)
	}
	if err := r.History.Flush(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	v, err := check.Run(cctx, r.HistoryPath(), check.Policy{AllowLate: true, Thresholds: SteadyThresholds})
	if err != nil {
		return fmt.Errorf("check the steady state: %w", err)
	}
	r.Steady = v
	return nil
}

// Load runs the load phase with the fault timeline: traffic and faults in
// parallel for --duration. The timeline heals each fault when its time is
// up and every fault at its end.
func (r *Run) Load(ctx context.Context) error {
	if err := r.Need(StepUp, StepSteady); err != nil {
		return err
	}
	return r.done(StepLoad, r.load(ctx))
}

func (r *Run) load(ctx context.Context) error {
	steps, err := r.buildSteps()
	if err != nil {
		return err
	}
	r.Timeline = &faults.Timeline{Steps: steps, Events: r.History, Logger: r.Log, End: r.P.Duration}
	r.Log.Info("fault timeline", "schedule", strings.TrimSpace(faults.Schedule(steps)))
	r.phase(history.PhaseLoad, 0, "")
	ctx, cancel := context.WithTimeout(ctx, r.P.Duration+phaseSlack+faults.DefaultHealTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var loadErr, faultErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		loadErr = r.Traffic.Load(ctx, history.PhaseLoad, r.P.Duration)
	}()
	go func() {
		defer wg.Done()
		faultErr = r.Timeline.Run(ctx)
	}()
	wg.Wait()
	// A fault that could not be injected or whose heal was not verified is
	// judged after the heal (HealProblems); a timeline cancelled by the
	// phase's deadline is a hang.
	r.TimelineErr = faultErr
	if faultErr != nil {
		r.Log.Error("fault timeline", "err", faultErr)
	}
	if loadErr != nil {
		return fmt.Errorf("load: %w", loadErr)
	}
	return ctx.Err()
}

// buildSteps builds the plan's faults against the running stack: one step
// per resolved target, each at its fault's offsets.
func (r *Run) buildSteps() ([]faults.Step, error) {
	if len(r.Plan.Faults) == 0 && len(r.Plan.Menu) == 0 {
		return nil, nil
	}
	fenv, err := NewFaultEnv(r.Env)
	if err != nil {
		return nil, err
	}
	var steps []faults.Step
	var errs []error
	for _, f := range r.Plan.Faults {
		at, hold := f.Offsets(r.P.Duration)
		for _, spec := range f.Resolution.Specs {
			fault, err := spec.Build(fenv)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			steps = append(steps, faults.Step{At: at, For: hold, Fault: fault, Spec: spec.String()})
		}
	}
	if len(r.Plan.Menu) > 0 {
		planned, err := r.planNemesis(fenv)
		if err != nil {
			errs = append(errs, err)
		}
		steps = append(steps, planned...)
	}
	return steps, errors.Join(errs...)
}

// planNemesis plans the scenario's random timeline from the run's seed and
// records every step it chose (log, history, report): the same seed gives
// the same schedule.
func (r *Run) planNemesis(fenv faults.Env) ([]faults.Step, error) {
	n := r.S.Nemesis
	start, window := n.Window.Offsets(r.P.Duration)
	if window == 0 {
		window = r.P.Duration - start
	}
	nem := &faults.Nemesis{Seed: r.P.Seed, Menu: r.Plan.Menu, Topology: &r.Plan.Topology, Count: n.Count,
		Start: start, Window: window, MinHold: n.MinHold, MaxHold: n.MaxHold, MinGap: n.MinGap, MaxGap: n.MaxGap,
		MaxActive: n.MaxActive, Logger: r.Log}
	steps, err := nem.Plan(fenv)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		line := "nemesis: " + s.String()
		r.Plan.Scheduled = append(r.Plan.Scheduled, line)
		if err := r.History.Resolve("nemesis", []string{s.Fault.Target()}, s.String()); err != nil {
			return nil, err
		}
	}
	return steps, nil
}

// recordPlan writes what the plan resolved into the log and the history:
// the primary region and, per fault, the targets its selector picked, so
// that a run can be read, and replayed, exactly.
func (r *Run) recordPlan() error {
	t := r.Plan.Topology
	r.Log.Info("stack", "name", r.Plan.Descriptor.Name, "topology", t.Describe())
	if err := r.History.Resolve(history.ResolvePrimary, []string{t.Primary}, "chosen by the "+t.PrimaryFrom); err != nil {
		return err
	}
	for _, f := range r.Plan.Faults {
		r.Log.Info("fault targets", "spec", f.Spec, "targets", strings.Join(f.Resolution.Targets(), ","))
		if err := r.History.Resolve(f.Spec, f.Resolution.Targets(), f.Resolution.Asked); err != nil {
			return err
		}
	}
	for _, o := range r.Plan.Omitted {
		r.Log.Info("optional fault omitted", "why", o)
	}
	// The replicas are owed a direct read: declared now, a history cut
	// before they were read is incomplete, not a stack without replicas.
	if names := slices.Sorted(maps.Keys(r.Plan.Descriptor.Replicas)); len(names) > 0 {
		if err := r.History.Resolve(history.ResolveReplicas, names, "declared by the stack"); err != nil {
			return err
		}
	}
	return nil
}

// Heal heals whatever is still broken (idempotent: the timeline healed its
// faults already unless it was aborted), restores every link and waits
// until every node is ready. A node that does not come back, or a fault
// whose heal is not verified, is the system failing to recover: it is kept
// in HealProblems for a gate to judge, and the run goes on to converge and
// read what the stack kept. Only a cancelled heal (a hang) fails the phase.
func (r *Run) Heal(ctx context.Context) error {
	if err := r.Need(StepUp); err != nil {
		return err
	}
	return r.done(StepHeal, r.heal(ctx))
}

func (r *Run) heal(ctx context.Context) error {
	r.phase(history.PhaseHeal, 0, "")
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, HealTimeout)
	defer cancel()
	var problems []string
	if r.Timeline != nil {
		if err := r.Timeline.HealAll(ctx); err != nil {
			problems = append(problems, "heal faults: "+err.Error())
		}
		if err := r.TimelineErr; err != nil {
			problems = append(problems, "fault timeline: "+err.Error())
		}
	}
	if err := r.Env.HealLinks(ctx); err != nil {
		problems = append(problems, "heal links: "+err.Error())
	}
	for _, n := range r.Env.Nodes() {
		if err := n.WaitReady(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("%s not ready after heal: %v", n.Name(), firstLine(err.Error())))
		}
	}
	r.mu.Lock()
	r.HealProblems = problems
	r.mu.Unlock()
	for _, p := range problems {
		r.Log.Error("not recovered", "problem", p)
	}
	return parent.Err()
}

// HealForCleanup is Heal for a DeferCleanup: it runs at most once more,
// only if the stack exists, and never fails the spec for a stack already
// healthy.
func (r *Run) HealForCleanup(ctx context.Context) error {
	if r.Env == nil || r.Timeline == nil {
		return nil
	}
	var err error
	r.healOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, HealTimeout)
		defer cancel()
		err = r.Timeline.HealAll(ctx)
	})
	return err
}

// Converge waits, bounded by --converge, until a probe read of every
// mailbox, through the IMAP endpoint and on every replica, finds every
// accepted delivery, and the endpoint's read every acknowledged flag
// change (see Missing), so that the final read judges the stack after it had
// its chance to drain queues and replicate. Reaching the deadline is not an
// error: the final read then shows what is missing.
func (r *Run) Converge(ctx context.Context) error {
	if err := r.Need(StepUp, StepHeal); err != nil {
		return err
	}
	return r.done(StepConverge, r.converge(ctx))
}

func (r *Run) converge(ctx context.Context) error {
	deadline := time.Now().Add(r.P.Converge)
	r.phase(history.PhaseConverge, 0, fmt.Sprint(int64(r.History.Clock().At(deadline))))
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(ReadTimeout))
	defer cancel()
	// The targets whose probe read still lacked something: a target once
	// complete is not read again (the final read judges them all).
	pending := append([]string{endpointTarget}, r.Traffic.Replicas()...)
	for i := 1; ; i++ {
		missing, err := r.probe(ctx, i, pending)
		switch {
		case err != nil:
			r.Log.Warn("convergence probe", "round", i, "err", err)
		default:
			pending = slices.DeleteFunc(pending, func(t string) bool { return missing[t] == 0 })
			if len(pending) == 0 {
				r.Log.Info("converged", "probes", i)
				return nil
			}
			r.Log.Info("not converged yet", "probe", i, "missing", sum(missing, pending))
		}
		if time.Now().Add(ProbeEvery).After(deadline) {
			r.Log.Warn("convergence deadline reached", "missing", sum(missing, pending))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ProbeEvery):
		}
	}
}

// endpointTarget is the read through the stack's IMAP endpoint among the
// convergence targets (the others are replica names).
const endpointTarget = ""

// sum adds up the counts of targets.
func sum(counts map[string]int, targets []string) int {
	n := 0
	for _, t := range targets {
		n += counts[t]
	}
	return n
}

// probe reads every mailbox of each target (the endpoint, a replica) into
// a scratch history and returns, per target, what its read did not show
// yet (see Missing).
func (r *Run) probe(ctx context.Context, i int, targets []string) (map[string]int, error) {
	if err := r.History.Flush(); err != nil {
		return nil, err
	}
	path := filepath.Join(r.Dir, "probe.jsonl")
	defer os.Remove(path)
	w, err := history.Create(path, r.History.Clock(), history.Header{RunID: r.P.RunID, Scenario: r.S.Name})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	var replicas []string
	for _, t := range targets {
		if err != nil {
			break
		}
		if t == endpointTarget {
			err = r.Traffic.FinalRead(rctx, w, i)
		} else {
			replicas = append(replicas, t)
			err = r.Traffic.ReadReplica(rctx, w, t)
		}
	}
	cancel()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	missing, err := Missing(r.HistoryPath(), path, replicas...)
	if err != nil {
		return nil, err
	}
	for _, t := range replicas {
		if missing[t] > 0 {
			r.Log.Info("replica not converged yet", "replica", t, "missing", missing[t])
		}
	}
	return missing, nil
}

// Missing counts what a read does not show yet: the accepted (message,
// recipient) deliveries of the history at historyPath that the final
// records of readPath lack, for the read through the endpoint (key "") and
// for each named replica (records whose Target is the replica); and, for
// the endpoint, the acknowledged flag changes whose message the read shows
// without the flag (a change made on a backup store that replication has
// not carried back yet).
func Missing(historyPath, readPath string, replicas ...string) (map[string]int, error) {
	owed := map[[2]string]bool{}
	flags := map[uidKey]map[string]bool{}
	if _, err := history.Each(historyPath, func(rec history.Record) error {
		if rec.Type != history.TypeOp || rec.Scope != history.ScopeOp || rec.Outcome != history.OK {
			return nil
		}
		switch rec.Kind {
		case history.KindSMTPSend:
			for _, rc := range rec.Rcpt {
				owed[[2]string{rec.MsgID, strings.ToLower(rc)}] = true
			}
		case history.KindIMAPStore:
			k := uidKey{strings.ToLower(rec.Mailbox), rec.UIDValidity, rec.UID}
			if flags[k] == nil {
				flags[k] = map[string]bool{}
			}
			for _, f := range rec.Flags {
				flags[k][f] = true
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	left := map[string]map[[2]string]bool{"": maps.Clone(owed)}
	for _, name := range replicas {
		left[name] = maps.Clone(owed)
	}
	flagsMissing := 0
	if _, err := history.Each(readPath, func(rec history.Record) error {
		set, ok := left[rec.Target]
		if !ok || rec.Type != history.TypeFinal {
			return nil
		}
		box, _, _ := strings.Cut(rec.Mailbox, "/")
		delete(set, [2]string{rec.MsgID, strings.ToLower(box)})
		if rec.Target == "" {
			for f := range flags[uidKey{strings.ToLower(rec.Mailbox), rec.UIDValidity, rec.UID}] {
				if !slices.Contains(rec.Flags, f) {
					flagsMissing++
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make(map[string]int, len(left))
	for target, set := range left {
		out[target] = len(set)
	}
	out[""] += flagsMissing
	return out, nil
}

// uidKey names a message by where a client saw it.
type uidKey struct {
	mailbox     string
	uidValidity uint32
	uid         uint32
}

// FinalRead reads every mailbox twice, RoundGap apart, into the history.
// The ledger counts copies in the last complete round; a message absent
// from the first and present in the last is late. A round that cannot
// complete is recorded as such: the ledger is then judged on the rounds
// that did, or is unknown, never a pass.
func (r *Run) FinalRead(ctx context.Context) error {
	if err := r.Need(StepUp); err != nil {
		return err
	}
	return r.done(StepFinalRead, r.finalRead(ctx))
}

func (r *Run) finalRead(ctx context.Context) error {
	const rounds = 2
	replicas := r.Traffic.Replicas()
	complete := 0
	for round := 1; round <= rounds; round++ {
		if round > 1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(RoundGap):
			}
		}
		r.setPhase(fmt.Sprintf("%s %d", history.PhaseFinalRead, round))
		rctx, cancel := context.WithTimeout(ctx, ReadBound(ctx, rounds-round+1+len(replicas), rounds-round))
		// The traffic writes the round's final-read and final-read-done
		// events; the latter only when every mailbox was read.
		err := r.Traffic.FinalRead(rctx, r.History, round)
		cancel()
		if err != nil {
			r.Log.Error("final read round incomplete", "round", round, "err", err)
			continue
		}
		complete++
	}
	r.Log.Info("final read", "complete_rounds", complete)
	// Then every replica directly: the checker proves that each holds
	// every message the clients can see. A replica that cannot be read
	// leaves its read incomplete, and the replicas check unknown.
	for i, name := range replicas {
		r.setPhase(string(history.PhaseReplicaRead) + " " + name)
		rctx, cancel := context.WithTimeout(ctx, ReadBound(ctx, len(replicas)-i, 0))
		err := r.Traffic.ReadReplica(rctx, r.History, name)
		cancel()
		if err != nil {
			r.Log.Error("replica read incomplete", "replica", name, "err", err)
		}
	}
	return ctx.Err()
}

// ReadBound is the bound of the next of reads reads (final-read rounds
// and replica reads) left in the final-read phase, gaps RoundGaps still
// to wait: an equal share of the time left before ctx's deadline, at most
// ReadTimeout. A slow round so cannot eat the replica reads' time; a read
// that ends early leaves its share to the next ones.
func ReadBound(ctx context.Context, reads, gaps int) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok || reads <= 0 {
		return ReadTimeout
	}
	share := (time.Until(dl) - time.Duration(gaps)*RoundGap) / time.Duration(reads)
	return max(min(share, ReadTimeout), 0)
}

// Check closes the history and judges it under the scenario's policy.
func (r *Run) Check(ctx context.Context) error {
	if r.History == nil {
		return errors.New("run not started")
	}
	return r.done(StepCheck, r.check(ctx))
}

func (r *Run) check(ctx context.Context) error {
	r.phase(history.PhaseDone, 0, "")
	if err := r.History.Close(); err != nil {
		return fmt.Errorf("close history: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	v, err := check.Run(ctx, r.HistoryPath(), r.S.Policy)
	if err != nil {
		return fmt.Errorf("check %s: %w", r.HistoryPath(), err)
	}
	r.Verdict, r.Judged = v, true
	r.Log.Info("verdict", "status", v.Status, "reason", v.Reason)
	// A history without its mandatory phases proves nothing: unless it
	// proves a failure, the harness did not get its answer (exit 2), and
	// no gate is judged on it.
	if len(v.Incomplete) > 0 && v.Status != check.Failure {
		return fmt.Errorf("history incomplete (no %s): nothing proven", strings.Join(v.Incomplete, ", no "))
	}
	return nil
}

// JudgePartial judges the history of a run that did not reach its check
// (a phase failed, a panic, an interrupt), after Teardown closed it, so
// that the report shows what was recorded. The history has no done event:
// the verdict is at best unknown (Partial), never a pass. It does nothing
// for a run judged already or never started.
func (r *Run) JudgePartial(ctx context.Context) {
	if r.Judged || r.History == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	v, err := check.Run(ctx, r.HistoryPath(), r.S.Policy)
	if err != nil {
		r.Log.Warn("partial verdict", "err", err)
		return
	}
	r.Verdict, r.Judged, r.Partial = v, true, true
	r.Log.Info("partial verdict", "status", v.Status, "reason", v.Reason)
}

// Teardown removes the stack (saving its logs into the scenario's folder)
// and closes the history and the log. Safe to call more than once.
func (r *Run) Teardown(ctx context.Context) error {
	r.Progress.End()
	var errs []error
	if r.Env != nil {
		ctx, cancel := context.WithTimeout(ctx, TeardownTimeout)
		defer cancel()
		start := time.Now()
		if err := r.Env.Teardown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tear down: %w", err))
			r.done(StepTeardown, err)
		}
		r.Log.Info("stack down", "took", time.Since(start).Round(time.Millisecond))
	}
	if r.History != nil {
		if err := r.History.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.logFile != nil {
		_ = r.logFile.Close()
	}
	return errors.Join(errs...)
}
