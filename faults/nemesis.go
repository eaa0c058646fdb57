package faults

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"
)

// Nemesis plans a random timeline from a seed: which fault of its menu,
// against which target, when, for how long. The same seed, menu and env
// always give the same plan; every choice is logged.
type Nemesis struct {
	// Seed drives every choice.
	Seed int64
	// Menu lists the faults to pick from; a spec whose target is "*" gets a
	// random target of its kind's target type, one whose target is a
	// selector a random target among those it matches in Topology.
	Menu []Spec
	// Topology resolves the menu's selectors (needed only when it has some).
	Topology *Topology
	// Count, when positive, is the most faults the plan holds.
	Count int
	// Start is the offset of the earliest injection.
	Start time.Duration
	// Window is how long after Start faults may still be injected.
	Window time.Duration
	// MinHold and MaxHold bound how long each fault stays injected.
	MinHold, MaxHold time.Duration
	// MinGap and MaxGap bound the time between two injections.
	MinGap, MaxGap time.Duration
	// MaxActive is how many faults may be injected at once (default 1:
	// faults in series).
	MaxActive int
	// Exclude lists targets never picked for "*" (e.g. "edge").
	Exclude []string
	// Logger receives one line per choice (may be nil).
	Logger *slog.Logger
}

// Plan builds the timeline's steps against env. Two faults never share a
// target (or a footprint, see Footprinter) while both are injected.
func (n *Nemesis) Plan(env Env) ([]Step, error) {
	if len(n.Menu) == 0 {
		return nil, fmt.Errorf("nemesis: empty menu")
	}
	if n.MaxHold < n.MinHold || n.MaxGap < n.MinGap {
		return nil, fmt.Errorf("nemesis: max hold/gap below min")
	}
	log := n.Logger
	if log == nil {
		log = discard
	}
	maxActive := n.MaxActive
	if maxActive <= 0 {
		maxActive = 1
	}
	rng := rand.New(rand.NewPCG(uint64(n.Seed), uint64(n.Seed)^0x6d61696c6368616f))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		// Whole milliseconds keep schedules readable.
		return (lo + time.Duration(rng.Int64N(int64(hi-lo)+1))).Round(time.Millisecond)
	}
	excluded := map[string]bool{}
	for _, e := range n.Exclude {
		excluded[e] = true
	}
	log.Info("nemesis plan", "seed", n.Seed, "menu", len(n.Menu), "window", n.Window, "max_active", maxActive)

	type held struct {
		end       time.Duration
		footprint map[string]bool
	}
	var (
		steps  []Step
		active []held
	)
	at := n.Start
	for at < n.Start+n.Window && (n.Count <= 0 || len(steps) < n.Count) {
		// Drop faults healed by now; wait for a slot if all are taken.
		kept := active[:0]
		for _, h := range active {
			if h.end > at {
				kept = append(kept, h)
			}
		}
		active = kept
		if len(active) >= maxActive {
			sort.Slice(active, func(i, j int) bool { return active[i].end < active[j].end })
			at = active[0].end
			continue
		}
		busy := map[string]bool{}
		for _, h := range active {
			for k := range h.footprint {
				busy[k] = true
			}
		}
		choice := rng.IntN(len(n.Menu))
		spec := n.Menu[choice]
		var (
			f   Fault
			err error
		)
		if spec.Target == AnyTarget || IsSelector(spec.Target) {
			cands, err := n.candidates(env, spec)
			if err != nil {
				return nil, fmt.Errorf("nemesis: %w", err)
			}
			var ok []Fault
			var okSpecs []Spec
			for _, c := range cands {
				if excluded[c] || busy[c] {
					continue
				}
				s := spec.WithTarget(c)
				cf, err := s.Build(env)
				if err != nil || overlaps(footprint(cf), busy) {
					continue
				}
				ok = append(ok, cf)
				okSpecs = append(okSpecs, s)
			}
			if len(ok) == 0 {
				log.Info("nemesis: no free target; skipping a gap", "at", at, "spec", spec.String())
				at += between(n.MinGap, n.MaxGap) + time.Millisecond
				continue
			}
			pick := rng.IntN(len(ok))
			f, spec = ok[pick], okSpecs[pick]
		} else {
			if f, err = spec.Build(env); err != nil {
				return nil, fmt.Errorf("nemesis: %w", err)
			}
			if overlaps(footprint(f), busy) {
				log.Info("nemesis: target busy; skipping a gap", "at", at, "spec", spec.String())
				at += between(n.MinGap, n.MaxGap) + time.Millisecond
				continue
			}
		}
		hold := between(n.MinHold, n.MaxHold)
		step := Step{At: at, For: hold, Fault: f, Spec: spec.String()}
		log.Info("nemesis choice", "step", len(steps), "menu_item", choice, "spec", step.Spec, "at", at, "for", hold)
		steps = append(steps, step)
		fp := map[string]bool{}
		for _, k := range footprint(f) {
			fp[k] = true
		}
		active = append(active, held{end: at + hold, footprint: fp})
		// At least a millisecond, so a zero gap still moves time on.
		at += max(between(n.MinGap, n.MaxGap), time.Millisecond)
	}
	return steps, nil
}

func footprint(f Fault) []string {
	if fp, ok := f.(Footprinter); ok {
		return fp.Footprint()
	}
	return []string{f.Target()}
}

func overlaps(fp []string, busy map[string]bool) bool {
	for _, k := range fp {
		if busy[k] {
			return true
		}
	}
	return false
}

// candidates lists the targets a menu spec may hit: every target of its
// type for "*", every target its selector matches (whatever its mode: the
// nemesis picks one) otherwise.
func (n *Nemesis) candidates(env Env, spec Spec) ([]string, error) {
	if spec.Target == AnyTarget {
		return candidates(env, spec.Kind.Target), nil
	}
	if n.Topology == nil {
		return nil, fmt.Errorf("%s: a selector needs the stack's topology", spec)
	}
	sel, err := ParseSelector(spec.Target, spec.Kind.Target)
	if err != nil {
		return nil, err
	}
	sel.Mode = Mode{Kind: "all"}
	names, err := sel.Resolve(*n.Topology, n.Seed)
	if IsNoMatch(err) {
		return nil, nil // nothing to hit: the plan skips a gap
	}
	return names, err
}

// candidates lists the names a target type can take in env, sorted.
func candidates(env Env, tt TargetType) []string {
	set := map[string]bool{}
	switch tt {
	case TargetLink:
		for _, l := range env.Links() {
			set[l.Name()] = true
		}
	case TargetNode:
		for _, n := range env.Nodes() {
			set[n.Name()] = true
		}
	case TargetRegion:
		for _, r := range env.Regions() {
			set[r.Name()] = true
		}
	case TargetRole:
		for _, n := range env.Nodes() {
			set[n.Role()] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
