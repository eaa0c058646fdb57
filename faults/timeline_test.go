package faults

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is a fault whose inject and heal are functions, for timeline tests.
type scripted struct {
	name, target string
	mu           sync.Mutex
	log          *[]string
	inject       func(ctx context.Context) error
	heals        int
}

func (s *scripted) Name() string   { return s.name }
func (s *scripted) Target() string { return s.target }
func (s *scripted) Inject(ctx context.Context) error {
	s.note("inject " + s.target)
	if s.inject != nil {
		return s.inject(ctx)
	}
	return nil
}
func (s *scripted) Heal(ctx context.Context) error {
	s.note("heal " + s.target)
	s.mu.Lock()
	s.heals++
	s.mu.Unlock()
	return ctx.Err() // heals must not inherit an abort
}
func (s *scripted) note(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.log = append(*s.log, m)
}

func TestTimelineSeriesAndOverlap(t *testing.T) {
	var log []string
	a := &scripted{name: "x", target: "a", log: &log}
	b := &scripted{name: "x", target: "b", log: &log}
	c := &scripted{name: "x", target: "c", log: &log}
	sink := &fakeSink{}
	tl := &Timeline{Events: sink, Steps: []Step{
		{At: 0, For: 100 * time.Millisecond, Fault: a},
		{At: 50 * time.Millisecond, For: 100 * time.Millisecond, Fault: b}, // overlaps a
		{At: 200 * time.Millisecond, Fault: c},                             // held until the end
	}, End: 300 * time.Millisecond}
	start := time.Now()
	if err := tl.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > time.Second {
		t.Errorf("timeline took %v, want about 300ms", took)
	}
	want := "inject a|inject b|heal a|heal b|inject c|heal c"
	if got := strings.Join(log, "|"); got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
	wantEv := "fault.inject x a ok|fault.inject x b ok|fault.heal x a ok|fault.heal x b ok|fault.inject x c ok|fault.heal x c ok"
	if got := strings.Join(sink.Events(), "|"); got != wantEv {
		t.Errorf("events = %s, want %s", got, wantEv)
	}
}

func TestTimelineHealsOnCancel(t *testing.T) {
	var log []string
	a := &scripted{name: "x", target: "a", log: &log}
	b := &scripted{name: "x", target: "b", log: &log}
	tl := &Timeline{Steps: []Step{
		{At: 0, For: time.Hour, Fault: a},
		{At: time.Hour, For: time.Hour, Fault: b}, // never injected
	}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := tl.Run(ctx); err != nil {
		t.Fatalf("abort with healthy heals should not error: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("abort took %v", took)
	}
	if got := strings.Join(log, "|"); got != "inject a|heal a" {
		t.Errorf("log = %s", got)
	}
}

func TestTimelineHealsOnPanicAndFailedInject(t *testing.T) {
	var log []string
	p := &scripted{name: "x", target: "panics", log: &log, inject: func(context.Context) error { panic("boom") }}
	f := &scripted{name: "x", target: "fails", log: &log, inject: func(context.Context) error { return errors.New("half done") }}
	sink := &fakeSink{}
	tl := &Timeline{Events: sink, Steps: []Step{{At: 0, For: time.Second, Fault: p}, {At: 0, For: time.Second, Fault: f}}}
	start := time.Now()
	err := tl.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") || !strings.Contains(err.Error(), "inject x:fails: half done") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Errorf("a failed inject should heal at once, not hold its duration")
	}
	if p.heals != 1 || f.heals != 1 {
		t.Errorf("heals: panicking %d, failing %d; want 1 each", p.heals, f.heals)
	}
	evs := strings.Join(sink.Events(), "|")
	for _, want := range []string{"fault.inject x fails fail", "fault.heal x fails ok", "fault.heal x panics ok"} {
		if !strings.Contains(evs, want) {
			t.Errorf("events %s lack %s", evs, want)
		}
	}
}

func TestTimelineHealAll(t *testing.T) {
	var log []string
	a := &scripted{name: "x", target: "a", log: &log}
	tl := &Timeline{Steps: []Step{{At: 0, For: time.Hour, Fault: a}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tl.Run(ctx) }()
	deadline := time.Now().Add(time.Second)
	for len(tl.Active()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := tl.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.heals != 1 {
		t.Errorf("healed %d times, want exactly once", a.heals)
	}
}

func TestTimelineVerifiesHeal(t *testing.T) {
	env := newFakeEnv()
	f, err := Parse(env, "pause:store-a")
	if err != nil {
		t.Fatal(err)
	}
	// Make unpause "work" but leave the node unready: the heal must fail
	// verification within HealTimeout, not hang.
	env.nodes["store-a"].cut = true
	sink := &fakeSink{}
	tl := &Timeline{Events: sink, HealTimeout: 300 * time.Millisecond, Steps: []Step{{At: 0, For: 10 * time.Millisecond, Fault: f}}}
	err = tl.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "heal pause:store-a") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(sink.Events(), "|"); got != "fault.inject pause store-a ok|fault.heal pause store-a fail" {
		t.Errorf("events = %s", got)
	}
}

func TestTimelinePartitionObserved(t *testing.T) {
	env := newFakeEnv()
	f, err := Parse(env, "partition:wan-a-b")
	if err != nil {
		t.Fatal(err)
	}
	tl := &Timeline{Steps: []Step{{At: 0, For: 20 * time.Millisecond, Fault: f}}}
	if err := tl.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !env.links["wan-a-b"].clean() {
		t.Error("link not healed")
	}
}

// stacking is a scripted fault that composes with others on its target.
type stacking struct{ *scripted }

func (stacking) Stacks() bool { return true }

// TestTimelineSerialisesOverlappingFootprints: a fault on a node that an
// earlier fault still holds waits for its heal (two faults never stop or
// replace the same container at once), while toxics on one link overlap.
func TestTimelineSerialisesOverlappingFootprints(t *testing.T) {
	var log []string
	up := &scripted{name: "upgrade", target: "store-a", log: &log, inject: func(ctx context.Context) error {
		time.Sleep(150 * time.Millisecond) // a roll outlasting its slot
		return nil
	}}
	down := &scripted{name: "rollback", target: "store-a", log: &log}
	other := &scripted{name: "kill", target: "mta-a", log: &log}
	lat := stacking{&scripted{name: "latency", target: "wan", log: &log}}
	reset := stacking{&scripted{name: "reset-peer", target: "wan", log: &log}}
	tl := &Timeline{Events: &fakeSink{}, Steps: []Step{
		{At: 0, For: 50 * time.Millisecond, Fault: up},
		{At: 60 * time.Millisecond, For: 50 * time.Millisecond, Fault: down},   // due while up is still injecting
		{At: 70 * time.Millisecond, For: 10 * time.Millisecond, Fault: other},  // another node: not held up
		{At: 100 * time.Millisecond, For: 200 * time.Millisecond, Fault: lat},  // toxics on one link
		{At: 120 * time.Millisecond, For: 20 * time.Millisecond, Fault: reset}, // overlap lat
	}}
	if err := tl.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(log, "|")
	idx := func(m string) int { return strings.Index(got, m) }
	var storeA []string
	for _, m := range log {
		if strings.HasSuffix(m, "store-a") {
			storeA = append(storeA, m)
		}
	}
	if s := strings.Join(storeA, ","); s != "inject store-a,heal store-a,inject store-a,heal store-a" {
		t.Errorf("store-a saw %s: the rollback acted while the upgrade was still injected (log %s)", s, got)
	}
	if idx("inject mta-a") > idx("heal store-a") {
		t.Errorf("a fault on another node waited (log %s)", got)
	}
	if !(idx("inject wan") < idx("heal wan")) || strings.Count(got, "inject wan") != 2 || idx("heal wan") < strings.LastIndex(got, "inject wan") {
		t.Errorf("toxics on one link did not overlap (log %s)", got)
	}
}

// stuckHeal is a fault whose heals wait until their context ends, for
// their first blocked calls, then heal at once; healDelay makes every
// heal take that long.
type stuckHeal struct {
	target    string
	blocked   int // heals that wait for their context
	healDelay time.Duration
	mu        sync.Mutex
	calls     int
}

func (s *stuckHeal) Name() string                 { return "stuck" }
func (s *stuckHeal) Target() string               { return s.target }
func (s *stuckHeal) Inject(context.Context) error { return nil }
func (s *stuckHeal) Heal(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	block := s.calls <= s.blocked
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(s.healDelay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// An aborted timeline heals past the cancellation but not past its
// caller's deadline (it used to take up to HealTimeout per step); a heal
// that ran out of time stays active, and a later HealAll heals it.
func TestTimelineHealKeepsTheCallersDeadline(t *testing.T) {
	f := &stuckHeal{target: "a", blocked: 1}
	tl := &Timeline{Steps: []Step{{At: 0, For: time.Hour, Fault: f}}, HealTimeout: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	abort, stop := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, stop)
	start := time.Now()
	err := tl.Run(abort)
	if took := time.Since(start); took < 350*time.Millisecond || took > 2*time.Second {
		t.Errorf("aborted timeline returned after %v, want at its caller's deadline (400ms)", took)
	}
	if err == nil || !strings.Contains(err.Error(), "ran out of time") {
		t.Fatalf("err = %v, want a heal that ran out of time", err)
	}
	if len(tl.Active()) != 1 {
		t.Fatalf("active = %v, want the unhealed step", tl.Active())
	}
	hctx, hcancel := context.WithTimeout(context.Background(), time.Second)
	defer hcancel()
	if err := tl.HealAll(hctx); err != nil {
		t.Fatalf("heal again: %v", err)
	}
	if len(tl.Active()) != 0 || f.calls != 2 {
		t.Errorf("after HealAll: active %v, heal calls %d; want none active, 2 calls", tl.Active(), f.calls)
	}
	if err := tl.HealAll(hctx); err != nil || f.calls != 2 {
		t.Errorf("a healed step was healed again: %v, %d calls", err, f.calls)
	}
}

// HealAll heals every active step at once, within its caller's deadline.
func TestTimelineHealAllIsBoundedAndConcurrent(t *testing.T) {
	var steps []Step
	for _, n := range []string{"a", "b", "c"} {
		steps = append(steps, Step{At: 0, For: time.Hour, Fault: &stuckHeal{target: n, healDelay: 200 * time.Millisecond}})
	}
	stuck := &stuckHeal{target: "d", blocked: 1}
	steps = append(steps, Step{At: 0, For: time.Hour, Fault: stuck})
	tl := &Timeline{Steps: steps, HealTimeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tl.Run(ctx) }()
	for deadline := time.Now().Add(time.Second); len(tl.Active()) < len(steps) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer hcancel()
	start := time.Now()
	err := tl.HealAll(hctx)
	took := time.Since(start)
	if took < 450*time.Millisecond || took > 900*time.Millisecond {
		t.Errorf("HealAll took %v, want its deadline (500ms): the three 200ms heals at once, the stuck one cut", took)
	}
	if err == nil || !strings.Contains(err.Error(), "heal stuck:d") || strings.Contains(err.Error(), "stuck:a") {
		t.Errorf("err = %v, want only d's heal failed", err)
	}
	if a := tl.Active(); len(a) != 1 || a[0].Fault.Target() != "d" {
		t.Errorf("active = %v, want d only", a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after the abort: %v (d heals at its second try)", err)
	}
}
