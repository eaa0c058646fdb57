package faults

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func testNemesis(seed int64, log *bytes.Buffer) *Nemesis {
	menu := []Spec{
		MustParseSpec("latency:*:100ms:jitter=20ms"),
		MustParseSpec("partition:*"),
		MustParseSpec("kill:*"),
		MustParseSpec("pause:*"),
		MustParseSpec("region-loss:*"),
		MustParseSpec("partition-oneway:wan-a-b:downstream"),
	}
	return &Nemesis{Seed: seed, Menu: menu, Start: time.Second, Window: 2 * time.Minute,
		MinHold: 5 * time.Second, MaxHold: 30 * time.Second, MinGap: time.Second, MaxGap: 10 * time.Second,
		MaxActive: 3, Exclude: []string{"edge"},
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{ReplaceAttr: dropTime}))}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// TestNemesisDeterministic: a fixed seed plans the same overlapping
// schedule twice (on envs whose listings come in random map order), and
// another seed plans a different one.
func TestNemesisDeterministic(t *testing.T) {
	var log1, log2, log3 bytes.Buffer
	s1, err := testNemesis(42, &log1).Plan(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := testNemesis(42, &log2).Plan(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	if Schedule(s1) != Schedule(s2) {
		t.Fatalf("same seed, different schedules:\n%s\n---\n%s", Schedule(s1), Schedule(s2))
	}
	if log1.String() != log2.String() {
		t.Fatalf("same seed, different choice logs")
	}
	s3, err := testNemesis(43, &log3).Plan(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	if Schedule(s1) == Schedule(s3) {
		t.Fatal("seeds 42 and 43 planned the same schedule")
	}
	if len(s1) < 5 {
		t.Fatalf("only %d steps in 2 minutes", len(s1))
	}
	t.Logf("seed 42 schedule:\n%s", Schedule(s1))
	if !strings.Contains(log1.String(), "nemesis choice") {
		t.Error("choices are not logged")
	}

	// The plan overlaps faults but never two on one footprint, and never
	// more than MaxActive at once.
	overlap := false
	for i, a := range s1 {
		if a.Fault.Target() == "edge" {
			t.Errorf("excluded target picked: %s", a.Spec)
		}
		active := 1
		for j, b := range s1 {
			if i == j || b.At > a.At || b.At+b.For <= a.At {
				continue
			}
			active++
			overlap = true
			for _, x := range footprint(a.Fault) {
				for _, y := range footprint(b.Fault) {
					if x == y {
						t.Errorf("steps %d and %d share %s while both injected", i, j, x)
					}
				}
			}
		}
		if active > 3 {
			t.Errorf("%d faults active at step %d", active, i)
		}
	}
	if !overlap {
		t.Error("no overlapping faults in the plan")
	}
}

func TestNemesisPlanRuns(t *testing.T) {
	env := newFakeEnv()
	var buf bytes.Buffer
	n := testNemesis(7, &buf)
	n.Start, n.Window = 0, 200*time.Millisecond
	n.MinHold, n.MaxHold, n.MinGap, n.MaxGap = 20*time.Millisecond, 60*time.Millisecond, 10*time.Millisecond, 30*time.Millisecond
	steps, err := n.Plan(env)
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	tl := &Timeline{Steps: steps, Events: sink, HealTimeout: 2 * time.Second}
	if err := tl.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.Events()); got != 2*len(steps) {
		t.Errorf("%d events for %d steps", got, len(steps))
	}
	for _, l := range env.links {
		if !l.clean() {
			t.Errorf("link %s left broken", l.name)
		}
	}
	for _, nd := range env.nodes {
		if err := nd.WaitReady(t.Context()); err != nil {
			t.Errorf("node left broken: %v", err)
		}
	}
}

// A menu of selectors picks only targets its selectors match in the
// topology, stops at Count, and is the same for the same seed.
func TestNemesisSelectorsAndCount(t *testing.T) {
	topo := Topology{Primary: "a", Regions: []string{"a", "b"}, Nodes: []TopoNode{
		{"edge", "edge", ""}, {"standby", "standby", ""}, {"mta-a", "mta", "a"}, {"mta-b", "mta", "b"}, {"store-a", "store", "a"}, {"store-b", "store", "b"}}}
	plan := func(seed int64) []Step {
		n := &Nemesis{Seed: seed, Topology: &topo, Count: 4,
			Menu:  []Spec{MustParseSpec("kill:role=mta"), MustParseSpec("pause:role=store,region=primary")},
			Start: time.Second, Window: 10 * time.Minute, MinHold: time.Second, MaxHold: 2 * time.Second, MinGap: time.Second, MaxGap: 2 * time.Second}
		steps, err := n.Plan(newFakeEnv())
		if err != nil {
			t.Fatal(err)
		}
		return steps
	}
	steps := plan(5)
	if len(steps) != 4 {
		t.Fatalf("%d steps, want Count 4:\n%s", len(steps), Schedule(steps))
	}
	for _, s := range steps {
		ok := (s.Fault.Name() == "kill" && strings.HasPrefix(s.Fault.Target(), "mta-")) ||
			(s.Fault.Name() == "pause" && s.Fault.Target() == "store-a")
		if !ok {
			t.Errorf("step %s hits what no selector matches", s)
		}
	}
	if Schedule(plan(5)) != Schedule(steps) {
		t.Error("same seed, different schedule")
	}
	// Without a topology a selector cannot be resolved: an error, not a guess.
	n := &Nemesis{Seed: 1, Menu: []Spec{MustParseSpec("kill:role=mta")}, Window: time.Minute, MaxHold: time.Second, MaxGap: time.Second}
	if _, err := n.Plan(newFakeEnv()); err == nil {
		t.Error("a selector menu planned without a topology")
	}
}
