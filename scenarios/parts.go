package scenarios

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/flow"
	"github.com/onsi/ginkgo/v2/types"
)

// A run's scenarios may run N at a time (mailchaos run --parallel N): the
// command splits the selected scenarios into N parts balanced by planned
// wall time (Split), runs each part in a process of its own (flow.Params
// Part) that writes its scenarios into the run folder and its outcome into
// a part file, and, when every part has ended, merges the parts into the
// one status, report, manifest and bundle of the run (Conclude). A run of
// one part writes the same files itself, through the same code (conclude).

// Part is what one process of a run leaves for the run-level files: the
// status of its scenarios, their report entries and the stack facts the
// report's environment lists.
type Part struct {
	Status    flow.Status       `json:"status"`
	Scenarios []render.Scenario `json:"scenarios"`
	Images    []flow.ImageRef   `json:"images,omitempty"`
	Software  []flow.Fact       `json:"software,omitempty"`
	// Interrupted says where an interrupt found the part ("interrupted at
	// <scenario>/<phase> (<cause>)"); "" when nothing interrupted it.
	Interrupted string `json:"interrupted,omitempty"`
}

// collect gathers this process's part of the run, with status st.
func collect(st flow.Status) Part {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	part := Part{Status: st, Scenarios: append([]render.Scenario(nil), results.list...)}
	for _, r := range results.facts {
		part.Images = append(part.Images, r.Images...)
		part.Software = append(part.Software, r.Software...)
	}
	return part
}

// conclude writes what this process leaves of the run with status st: in
// a part of a parallel run its part file; otherwise status.json and, with
// reports, the run's reports (writeRun). It returns the status as written.
func conclude(p flow.Params, st flow.Status, reports bool) flow.Status {
	part := collect(st)
	if p.Part > 0 {
		part.Interrupted = runInterrupt(begunRuns())
		if err := writePart(p.PartFile(p.Part), part); err != nil {
			fmt.Fprintln(os.Stderr, "mailchaos:", err)
		}
		return st
	}
	if !reports {
		if err := flow.WriteStatus(p.RunDir(), st); err != nil {
			fmt.Fprintln(os.Stderr, "mailchaos:", err)
		}
		return st
	}
	return writeRun(p, part)
}

// writeRun writes the run-level files of a run: status.json first (so
// that the manifest and the bundle hold it), then the reports, the
// manifest, its signature and the bundle, and points out/latest at the
// run. A run whose reports cannot be written is a harness failure unless a
// gate failed; the status file then says so. It returns the final status.
func writeRun(p flow.Params, part Part) flow.Status {
	st := part.Status
	if err := flow.WriteStatus(p.RunDir(), st); err != nil {
		fmt.Fprintln(os.Stderr, "mailchaos:", err)
	}
	if err := renderRun(p, part); err != nil {
		// A gate failure stays a gate failure; otherwise a run without
		// its reports cannot be trusted.
		if st.ExitCode != flow.ExitGate {
			st.ExitCode, st.Outcome = flow.ExitHarness, flow.OutcomeHarness
		}
		if st.Reason != "" {
			st.Reason += "; "
		}
		st.Reason += "run reports: " + err.Error()
		if err := flow.WriteStatus(p.RunDir(), st); err != nil {
			fmt.Fprintln(os.Stderr, "mailchaos:", err)
		}
		if err := linkLatest(p); err != nil {
			fmt.Fprintln(os.Stderr, "mailchaos: point out/latest at the run:", err)
		}
	}
	return st
}

func writePart(path string, part Part) error {
	b, err := json.MarshalIndent(part, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path+".tmp", append(b, '\n'), 0o644)
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		return fmt.Errorf("write part file: %w", err)
	}
	return nil
}

// ReadPart reads the outcome part i of the parallel run p wrote.
func ReadPart(p flow.Params, i int) (Part, error) {
	var part Part
	b, err := os.ReadFile(p.PartFile(i))
	if err != nil {
		return part, fmt.Errorf("read part %d: %w", i, err)
	}
	if err := json.Unmarshal(b, &part); err != nil {
		return part, fmt.Errorf("read part %d: %s: %w", i, p.PartFile(i), err)
	}
	return part, nil
}

// LostPart is the outcome of a part that ended without writing one (it
// was killed, or crashed): each of its scenarios a harness failure, with
// why.
func LostPart(scs []flow.Scenario, why string) Part {
	var part Part
	for _, s := range scs {
		part.Status.Scenarios = append(part.Status.Scenarios, flow.ScenarioStatus{Name: s.Name, Outcome: flow.OutcomeHarness,
			Failures: []flow.SpecFailure{{Spec: "the scenario's process", Outcome: flow.OutcomeHarness, State: "lost", Message: why}}})
		part.Scenarios = append(part.Scenarios, render.Scenario{Name: s.Name, Err: why, Labels: s.Labels})
	}
	part.Status.ExitCode, part.Status.Outcome, part.Status.Reason = flow.ExitHarness, flow.OutcomeHarness, why
	return part
}

// Merge makes one run, with the parameters and start of p, out of its
// parts. The run's outcome is decided from all its scenarios as for a run
// in one process (flow.Status.Judge: a gate failure outranks a harness
// failure), then: a part that failed for a reason none of its scenarios
// shows (a suite node, a lost process) is a harness failure of the run;
// an interrupted part makes the run interrupted (exit code 2, where each
// part was found first in the reason); a part ended by a second signal
// makes it ExitInterrupted.
func Merge(p flow.Params, start time.Time, parts []Part) Part {
	m := Part{Status: flow.Status{RunID: p.RunID, Seed: p.Seed, Label: p.Label, Start: start, End: time.Now()}}
	var problems, interrupts, abandons []string
	ran := 0
	for _, pt := range parts {
		m.Status.Scenarios = append(m.Status.Scenarios, pt.Status.Scenarios...)
		m.Scenarios = append(m.Scenarios, pt.Scenarios...)
		m.Images = append(m.Images, pt.Images...)
		m.Software = append(m.Software, pt.Software...)
		alone := flow.Status{Scenarios: pt.Status.Scenarios}
		n := ranIn(pt.Status.Scenarios)
		ran += n
		alone.Judge("", n)
		switch {
		case pt.Status.ExitCode == flow.ExitInterrupted:
			abandons = append(abandons, pt.Status.Reason)
		case pt.Interrupted != "":
			interrupts = append(interrupts, pt.Interrupted)
		case pt.Status.ExitCode == flow.ExitHarness && (len(pt.Status.Scenarios) == 0 || alone.ExitCode != flow.ExitHarness):
			problems = append(problems, pt.Status.Reason)
		}
	}
	// Run order is definition order, as in one process.
	rank := map[string]int{}
	for i, s := range Catalog() {
		rank[s.Name] = i + 1
	}
	at := func(name string) int { return cmp.Or(rank[name], len(rank)+1) }
	slices.SortStableFunc(m.Status.Scenarios, func(a, b flow.ScenarioStatus) int { return cmp.Compare(at(a.Name), at(b.Name)) })
	slices.SortStableFunc(m.Scenarios, func(a, b render.Scenario) int { return cmp.Compare(at(a.Name), at(b.Name)) })
	m.Status.Judge(strings.Join(problems, "; "), ran)
	if len(interrupts) > 0 {
		markInterrupted(&m.Status, strings.Join(interrupts, "; "))
		m.Interrupted = strings.Join(interrupts, "; ")
	}
	if len(abandons) > 0 {
		m.Status.ExitCode, m.Status.Outcome = flow.ExitInterrupted, flow.OutcomeHarness
		m.Status.Reason = strings.Join(abandons, "; ")
	}
	return m
}

// ranIn counts the scenarios that ran (not skipped, not pending).
func ranIn(scs []flow.ScenarioStatus) int {
	n := 0
	for _, sc := range scs {
		if sc.Outcome != flow.OutcomeSkipped && sc.Outcome != flow.OutcomePending {
			n++
		}
	}
	return n
}

// Conclude merges the parts of the parallel run p that started at start
// and writes its run-level files as a run in one process writes them:
// status.json, the reports, the manifest, its signature and the bundle;
// only status.json when a second signal ended the run (abandoned, or a
// part ended so). The parts' folder goes first, so that the run folder is
// what a run in one process leaves. It returns the run's status.
func Conclude(p flow.Params, start time.Time, parts []Part, abandoned bool) flow.Status {
	m := Merge(p, start, parts)
	if err := os.RemoveAll(filepath.Join(p.RunDir(), flow.PartsDir)); err != nil {
		fmt.Fprintln(os.Stderr, "mailchaos:", err)
	}
	if abandoned && m.Status.ExitCode != flow.ExitInterrupted {
		m.Status.ExitCode, m.Status.Outcome = flow.ExitInterrupted, flow.OutcomeHarness
		if m.Status.Reason != "" {
			m.Status.Reason += "; "
		}
		m.Status.Reason += "signalled again: the stacks were removed at once; no logs, no report"
	}
	if m.Status.ExitCode == flow.ExitInterrupted {
		if err := flow.WriteStatus(p.RunDir(), m.Status); err != nil {
			fmt.Fprintln(os.Stderr, "mailchaos:", err)
		}
		return m.Status
	}
	return writeRun(p, m)
}

// Selected returns the scenarios a run with p runs, in definition order:
// those the label filter and --scenario select.
func Selected(p flow.Params) ([]flow.Scenario, error) {
	filter, err := types.ParseLabelFilter(p.Label)
	if err != nil {
		return nil, fmt.Errorf("--label %q: %w", p.Label, err)
	}
	names := p.ScenarioNames()
	var out []flow.Scenario
	for _, s := range Catalog() {
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		// A spec's labels are its scenario's, and "gate" on the gates.
		if filter(s.Labels) || filter(append(slices.Clone(s.Labels), flow.GateLabel)) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Split divides scs into at most n parts whose planned wall times
// (flow.PlannedWall, zero for a scenario the stack cannot serve) are as
// even as a greedy split makes them: longest first, each into the part
// planned to end first (of two, the one with fewer scenarios). Each part
// keeps definition order; no part is empty.
func Split(p flow.Params, scs []flow.Scenario, n int) [][]flow.Scenario {
	n = max(1, min(n, len(scs)))
	cost := make([]time.Duration, len(scs))
	for i, s := range scs {
		cost[i] = flow.PlannedWall(p, s)
		if plan, err := flow.NewPlan(p, s); err == nil && plan.SkipReason() != "" {
			cost[i] = 0
		}
	}
	order := make([]int, len(scs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(cost[b], cost[a]) })
	load := make([]time.Duration, n)
	member := make([][]int, n)
	for _, i := range order {
		g := 0
		for j := range load {
			if load[j] < load[g] || load[j] == load[g] && len(member[j]) < len(member[g]) {
				g = j
			}
		}
		load[g] += cost[i]
		member[g] = append(member[g], i)
	}
	var parts [][]flow.Scenario
	for _, idx := range member {
		if len(idx) == 0 {
			continue
		}
		slices.Sort(idx)
		var part []flow.Scenario
		for _, i := range idx {
			part = append(part, scs[i])
		}
		parts = append(parts, part)
	}
	return parts
}
