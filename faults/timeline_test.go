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
