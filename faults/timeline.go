package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// Default bounds of a timeline's inject and heal steps.
const (
	DefaultInjectTimeout = 2 * time.Minute
	DefaultHealTimeout   = 3 * time.Minute
)

// Step is one fault on a timeline.
type Step struct {
	// At is the offset from the start of Run at which the fault is injected.
	At time.Duration
	// For is how long the fault stays injected before it is healed; 0 holds
	// it until the timeline ends (at End, or when the last timed step ends:
	// a timeline of held steps only and no End heals them at once).
	For time.Duration
	// Fault is the fault.
	Fault Fault
	// Spec is the spec the fault was built from, for logs (may be empty).
	Spec string
}

// String formats the step as "+1.5s for 10s latency:wan-a-b:...".
func (s Step) String() string {
	spec := s.Spec
	if spec == "" {
		spec = s.Fault.Name() + ":" + s.Fault.Target()
	}
	if s.For > 0 {
		return fmt.Sprintf("+%v for %v %s", s.At, s.For, spec)
	}
	return fmt.Sprintf("+%v until end %s", s.At, spec)
}

// Schedule formats steps one per line, in order of injection: two equal
// schedules print the same text.
func Schedule(steps []Step) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "%d %s\n", i, s)
	}
	return b.String()
}

// Timeline runs faults at offsets, in series or overlapping, and records
// each inject and heal. Every fault it injected is healed before Run
// returns: when its time is up, when the timeline ends, when ctx is
// cancelled (abort) and when a fault panics.
type Timeline struct {
	// Steps are the faults; they may overlap.
	Steps []Step
	// Events receives one inject and one heal event per step (may be nil).
	Events EventSink
	// Logger logs every inject and heal (may be nil).
	Logger *slog.Logger
	// End, when > 0, is the offset at which the timeline ends and every
	// fault still injected is healed. By default the timeline ends when the
	// last step with a duration has healed.
	End time.Duration
	// InjectTimeout bounds Inject plus the wait for its observed effect.
	InjectTimeout time.Duration
	// HealTimeout bounds Heal plus its verification.
	HealTimeout time.Duration

	mu     sync.Mutex
	active map[int]*runStep
	// busy holds the footprints (see Footprinter) of the steps between
	// their inject and their heal; freed is closed and replaced whenever
	// one is released.
	busy  map[string]int
	freed chan struct{}
}

// runStep is a step's run state; mu serialises its heal between the
// step's goroutine and HealAll.
type runStep struct {
	Step
	mu       sync.Mutex
	injected bool // inject was called (its effect may be partial)
	healed   bool
}

func (t *Timeline) log() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return discard
}

// end returns the offset at which held steps are healed.
func (t *Timeline) end() time.Duration {
	if t.End > 0 {
		return t.End
	}
	var end time.Duration
	for _, s := range t.Steps {
		if e := s.At + s.For; e > end {
			end = e
		}
	}
	return end
}

// Run executes the timeline and returns when every fault is healed. The
// error joins every failed inject, failed or unverified heal, and panic.
// Cancelling ctx aborts the timeline: faults not yet injected are skipped
// and injected ones are healed at once. Those heals do not inherit the
// cancellation (the stack must be whole again), but they do keep ctx's
// deadline: each is bounded by HealTimeout and by that deadline, so an
// aborted Run still returns within its caller's time.
func (t *Timeline) Run(ctx context.Context) error {
	log := t.log()
	ctx = WithLogger(ctx, log)
	t.mu.Lock()
	t.active = map[int]*runStep{}
	t.busy = map[string]int{}
	t.freed = make(chan struct{})
	t.mu.Unlock()
	start := time.Now()
	endAt := start.Add(t.end())
	log.Info("timeline start", "steps", len(t.Steps), "end", t.end())

	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	fail := func(err error) {
		emu.Lock()
		errs = append(errs, err)
		emu.Unlock()
	}
	for i, s := range t.Steps {
		rs := &runStep{Step: s}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.runStep(ctx, i, rs, start, endAt); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	log.Info("timeline done", "took", time.Since(start).Round(time.Millisecond), "errors", len(errs))
	return errors.Join(errs...)
}

func (t *Timeline) runStep(ctx context.Context, i int, rs *runStep, start, endAt time.Time) (err error) {
	log := t.log().With("step", i, "fault", rs.Fault.Name(), "target", rs.Fault.Target())
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("step %d %s:%s panicked: %v\n%s", i, rs.Fault.Name(), rs.Fault.Target(), p, debug.Stack())
			log.Error("fault panicked; healing", "panic", p)
			if herr := t.heal(ctx, i, rs, true); herr != nil {
				err = errors.Join(err, herr)
			}
		}
	}()
	if !sleepUntil(ctx, start.Add(rs.At)) {
		log.Info("skipped: timeline aborted before its time")
		return nil
	}
	// Two faults never act on the same node, link or region at once: a
	// rollback of a tier that starts while its upgrade is still rolling
	// would stop and replace the same containers twice over. A step waits
	// for the steps holding any part of its footprint to heal.
	if st, ok := rs.Fault.(Stacker); !ok || !st.Stacks() {
		fp := footprint(rs.Fault)
		if !t.claim(ctx, log, fp) {
			log.Info("skipped: timeline aborted while waiting for an overlapping fault to heal")
			return nil
		}
		defer t.release(fp)
	}
	var errs []error
	if ierr := t.inject(ctx, i, rs); ierr != nil {
		errs = append(errs, ierr)
	} else {
		until := endAt
		if rs.For > 0 {
			until = start.Add(rs.At + rs.For)
		}
		sleepUntil(ctx, until)
	}
	// A failed inject may have had part of its effect: heal it anyway.
	if herr := t.heal(ctx, i, rs, true); herr != nil {
		errs = append(errs, herr)
	}
	return errors.Join(errs...)
}

func (t *Timeline) inject(ctx context.Context, i int, rs *runStep) error {
	log := t.log().With("step", i, "fault", rs.Fault.Name(), "target", rs.Fault.Target())
	rs.mu.Lock()
	rs.injected = true
	rs.mu.Unlock()
	t.mu.Lock()
	t.active[i] = rs
	t.mu.Unlock()

	ictx, cancel := boundedCtx(ctx, orDefault(t.InjectTimeout, DefaultInjectTimeout))
	defer cancel()
	callStart := time.Now()
	log.Info("inject", "spec", rs.Spec)
	err := rs.Fault.Inject(ictx)
	if err == nil {
		if o, ok := rs.Fault.(InjectObserver); ok {
			err = o.AwaitInjected(ictx)
		}
	}
	callEnd := time.Now()
	t.event(history.KindFaultInject, rs.Fault, callStart, callEnd, err)
	if err != nil {
		log.Error("inject failed", "err", err, "took", callEnd.Sub(callStart))
		return fmt.Errorf("inject %s:%s: %w", rs.Fault.Name(), rs.Fault.Target(), err)
	}
	log.Info("injected", "took", callEnd.Sub(callStart))
	return nil
}

// claim waits until no other step holds any part of fp, then holds it.
// It returns false if ctx ends first.
func (t *Timeline) claim(ctx context.Context, log *slog.Logger, fp []string) bool {
	waited := time.Now()
	logged := false
	for {
		t.mu.Lock()
		held := slices.ContainsFunc(fp, func(k string) bool { return t.busy[k] > 0 })
		if !held {
			for _, k := range fp {
				t.busy[k]++
			}
			t.mu.Unlock()
			if logged {
				log.Info("overlapping fault healed; injecting", "waited", time.Since(waited).Round(time.Millisecond))
			}
			return true
		}
		freed := t.freed
		t.mu.Unlock()
		if !logged {
			log.Info("waiting: an earlier fault on the same footprint is still injected", "footprint", fp)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-freed:
		}
	}
}

// release gives fp back and wakes the steps waiting in claim.
func (t *Timeline) release(fp []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range fp {
		if t.busy[k]--; t.busy[k] <= 0 {
			delete(t.busy, k)
		}
	}
	close(t.freed)
	t.freed = make(chan struct{})
}

// heal heals a step once; later calls are no-ops, except after a heal
// that ran out of time (its context ended), which a later call (HealAll
// from a cleanup, with time of its own) tries again. The heal is bounded
// by HealTimeout and ctx's deadline; with outliveCancel (the timeline's
// own heals, which must run on abort) ctx's cancellation does not stop it.
func (t *Timeline) heal(ctx context.Context, i int, rs *runStep, outliveCancel bool) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.injected || rs.healed {
		return nil
	}
	log := t.log().With("step", i, "fault", rs.Fault.Name(), "target", rs.Fault.Target())
	hctx, cancel := healContext(WithLogger(ctx, t.log()), orDefault(t.HealTimeout, DefaultHealTimeout), outliveCancel)
	defer cancel()
	if err := hctx.Err(); err != nil {
		// No time left at all: leave the fault for a heal that has some.
		log.Error("heal skipped: no time left", "err", err)
		return fmt.Errorf("heal %s:%s: no time left (%w); still injected", rs.Fault.Name(), rs.Fault.Target(), err)
	}
	callStart := time.Now()
	log.Info("heal")
	err := safeCall(func() error { return rs.Fault.Heal(hctx) })
	if err == nil {
		if o, ok := rs.Fault.(HealObserver); ok {
			err = safeCall(func() error { return o.AwaitHealed(hctx) })
		}
	}
	callEnd := time.Now()
	t.event(history.KindFaultHeal, rs.Fault, callStart, callEnd, err)
	if err != nil && hctx.Err() != nil {
		log.Error("heal ran out of time", "err", err, "took", callEnd.Sub(callStart))
		return fmt.Errorf("heal %s:%s: ran out of time: %w", rs.Fault.Name(), rs.Fault.Target(), err)
	}
	rs.healed = true
	t.mu.Lock()
	delete(t.active, i)
	t.mu.Unlock()
	if err != nil {
		log.Error("heal failed", "err", err, "took", callEnd.Sub(callStart))
		return fmt.Errorf("heal %s:%s: %w", rs.Fault.Name(), rs.Fault.Target(), err)
	}
	log.Info("healed", "took", callEnd.Sub(callStart))
	return nil
}

// healContext bounds one heal by d and by ctx's deadline. With
// outliveCancel, cancelling ctx does not end the heal (only its deadline
// does): an aborted timeline must still leave the stack whole, within the
// time its caller has.
func healContext(ctx context.Context, d time.Duration, outliveCancel bool) (context.Context, context.CancelFunc) {
	if !outliveCancel {
		return boundedCtx(ctx, d)
	}
	base := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		base, cancel = context.WithDeadline(base, dl)
		hctx, hcancel := boundedCtx(base, d)
		return hctx, func() { hcancel(); cancel() }
	}
	return boundedCtx(base, d)
}

// HealAll heals every fault the running timeline has injected and not yet
// healed, all at once: steps injected together never share a footprint
// (claim), so their heals do not interfere, and a slow heal does not eat
// the others' time. Each is bounded by HealTimeout and ctx (its deadline
// and its cancellation). Scenarios call it from their cleanup so a panic
// or an abort outside Run still leaves the stack whole; Run itself never
// needs it. A heal that ran out of time stays active for a later call.
func (t *Timeline) HealAll(ctx context.Context) error {
	t.mu.Lock()
	var idx []int
	steps := map[int]*runStep{}
	for i, rs := range t.active {
		idx = append(idx, i)
		steps[i] = rs
	}
	t.mu.Unlock()
	sort.Ints(idx)
	return concurrently(idx, func(i int) error { return t.heal(ctx, i, steps[i], false) })
}

// Active returns the steps currently injected, in order.
func (t *Timeline) Active() []Step {
	t.mu.Lock()
	defer t.mu.Unlock()
	var idx []int
	for i := range t.active {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var out []Step
	for _, i := range idx {
		out = append(out, t.active[i].Step)
	}
	return out
}

func (t *Timeline) event(kind history.Kind, f Fault, start, end time.Time, err error) {
	if t.Events == nil {
		return
	}
	if eerr := t.Events.Event(kind, f.Name(), f.Target(), start, end, err); eerr != nil {
		t.log().Error("record fault event", "kind", kind, "fault", f.Name(), "err", eerr)
	}
}

// safeCall turns a panic in a heal into an error, so one broken heal does
// not stop the others.
func safeCall(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// sleepUntil waits until t; it returns false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
