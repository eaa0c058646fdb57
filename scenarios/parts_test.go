package scenarios

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// The nightly set splits into parts whose planned wall times differ by
// less than the longest scenario; every scenario is in exactly one part,
// in definition order; no part is empty.
func TestSplitBalancesTheNightlySet(t *testing.T) {
	p := flow.Defaults()
	p.Label = flow.LabelNightly
	selected, err := Selected(p)
	if err != nil || len(selected) < 5 {
		t.Fatalf("nightly selects %d scenarios (%v)", len(selected), err)
	}
	var longest, total time.Duration
	for _, s := range selected {
		longest = max(longest, flow.PlannedWall(p, s))
		total += flow.PlannedWall(p, s)
	}
	for _, n := range []int{1, 2, 3, len(selected), len(selected) + 5} {
		parts := Split(p, selected, n)
		if want := min(n, len(selected)); len(parts) != want {
			t.Errorf("n=%d: %d parts, want %d", n, len(parts), want)
		}
		var all []string
		var lo, hi time.Duration = 1 << 62, 0
		for _, part := range parts {
			if len(part) == 0 {
				t.Errorf("n=%d: an empty part", n)
			}
			var load time.Duration
			var names []string
			for _, s := range part {
				load += flow.PlannedWall(p, s)
				names = append(names, s.Name)
			}
			if !slices.IsSortedFunc(part, func(a, b flow.Scenario) int { return indexIn(selected, a) - indexIn(selected, b) }) {
				t.Errorf("n=%d: part %v is not in definition order", n, names)
			}
			lo, hi = min(lo, load), max(hi, load)
			all = append(all, names...)
		}
		slices.Sort(all)
		if want := namesOfScenarios(selected); !slices.Equal(all, want) {
			t.Errorf("n=%d: parts hold %v, want each of %v once", n, all, want)
		}
		if len(parts) > 1 && hi-lo > longest {
			t.Errorf("n=%d: part loads %s..%s differ by more than the longest scenario (%s)", n, lo, hi, longest)
		}
		if n == 2 {
			t.Logf("nightly (%d scenarios, %s planned one after another) in 2 parts: longest part %s", len(selected), total, hi)
		}
	}
}

// Longest first, each into the part planned to end first: a long
// scenario gets a part to itself when the others add up to it.
func TestSplitLongestFirst(t *testing.T) {
	p := flow.Defaults()
	p.Duration = time.Minute
	sc := func(name string, minutes int) flow.Scenario {
		return flow.Scenario{Name: name, MinDuration: time.Duration(minutes) * time.Minute}
	}
	scs := []flow.Scenario{sc("a", 1), sc("long", 10), sc("b", 1), sc("c", 1), sc("d", 1)}
	got := Split(p, scs, 2)
	var parts []string
	for _, part := range got {
		parts = append(parts, strings.Join(namesOfScenarios(part), ","))
	}
	if want := []string{"long", "a,b,c,d"}; !slices.Equal(parts, want) {
		t.Errorf("parts %q, want %q", parts, want)
	}
}

func TestSelected(t *testing.T) {
	for _, c := range []struct {
		label, names string
		want         string
	}{
		{"smoke", "", "steady-state"},
		{"", "mta-crash,steady-state", "mta-crash,steady-state"},
		{"nightly", "steady-state,region-destruction", "steady-state"},
		{"nightly && !dr", "region-loss,mta-crash", "mta-crash"},
	} {
		p := flow.Defaults()
		p.Label, p.Scenarios = c.label, c.names
		got, err := Selected(p)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(namesOfScenarios(got), ","); s != c.want {
			t.Errorf("label %q scenarios %q: selected %s, want %s", c.label, c.names, s, c.want)
		}
	}
}

// The merge of the parts' outcomes decides the run as one process would
// for the same scenarios: a gate failure outranks a harness failure, a
// part's own failure or loss is a harness failure, an interrupt makes the
// run exit 2 and a second signal 130.
func TestMerge(t *testing.T) {
	status := func(outcome string, names ...string) flow.Status {
		st := flow.Status{}
		for _, n := range names {
			sc := flow.ScenarioStatus{Name: n, Outcome: outcome}
			if outcome == flow.OutcomeSkipped {
				sc.SkipReason = "no standby"
			}
			st.Scenarios = append(st.Scenarios, sc)
		}
		st.Judge("", ranIn(st.Scenarios))
		return st
	}
	part := func(outcome string, names ...string) Part {
		pt := Part{Status: status(outcome, names...)}
		for _, n := range names {
			pt.Scenarios = append(pt.Scenarios, render.Scenario{Name: n})
		}
		return pt
	}
	with := func(pt Part, f func(*Part)) Part { f(&pt); return pt }
	for _, c := range []struct {
		name   string
		parts  []Part
		exit   int
		reason string
	}{
		{"all pass", []Part{part(flow.OutcomePass, "steady-state"), part(flow.OutcomePass, "chaos", "mta-crash")}, 0, ""},
		{"a gate outranks a harness failure", []Part{part(flow.OutcomeHarness, "mta-crash"), part(flow.OutcomeGate, "chaos")},
			1, "gate failed in chaos; harness failed in mta-crash"},
		{"harness failure", []Part{part(flow.OutcomePass, "chaos"), part(flow.OutcomeHarness, "mta-crash")}, 2, "harness failed in mta-crash"},
		{"a part's own failure", []Part{part(flow.OutcomePass, "chaos"), with(part(flow.OutcomePass, "mta-crash"), func(p *Part) {
			p.Status.ExitCode, p.Status.Outcome, p.Status.Reason = flow.ExitHarness, flow.OutcomeHarness, "suite node ReportAfterSuite failed: boom"
		})}, 2, "suite node ReportAfterSuite failed: boom"},
		{"a part that ended without a status", []Part{part(flow.OutcomePass, "chaos"), with(Part{}, func(p *Part) {
			p.Status = flow.Status{ExitCode: flow.ExitHarness, Outcome: flow.OutcomeHarness, Reason: "the suite ended without a status (report node did not run)"}
		})}, 2, "the suite ended without a status (report node did not run)"},
		{"a lost part", []Part{part(flow.OutcomePass, "chaos"), LostPart([]flow.Scenario{{Name: "mta-crash"}}, "part 2 (mta-crash) ended with exit code -1 without its outcome")},
			2, "harness failed in mta-crash"},
		{"skipped in one part, ran in the other", []Part{part(flow.OutcomeSkipped, "standby-takeover"), part(flow.OutcomePass, "chaos")},
			0, "skipped: standby-takeover (no standby)"},
		{"skipped everywhere", []Part{part(flow.OutcomeSkipped, "standby-takeover"), part(flow.OutcomeSkipped, "region-loss")},
			2, "every selected scenario was skipped: the stack cannot serve them: region-loss (no standby); standby-takeover (no standby)"},
		{"interrupted", []Part{part(flow.OutcomeGate, "chaos"), with(part(flow.OutcomeHarness, "mta-crash"), func(p *Part) {
			p.Interrupted = "interrupted at mta-crash/load (SIGINT)"
		})}, 2, "interrupted at mta-crash/load (SIGINT); gate failed in chaos; harness failed in mta-crash"},
		{"signalled twice", []Part{part(flow.OutcomePass, "chaos"), with(Part{}, func(p *Part) {
			p.Status = flow.Status{ExitCode: flow.ExitInterrupted, Outcome: flow.OutcomeHarness, Reason: "interrupted at mta-crash/up (SIGINT), then SIGINT again"}
			p.Interrupted = "interrupted at mta-crash/up (SIGINT)"
		})}, flow.ExitInterrupted, "interrupted at mta-crash/up (SIGINT), then SIGINT again"},
	} {
		p := flow.Defaults()
		p.RunID, p.Seed = "merge-1", 7
		m := Merge(p, time.Unix(100, 0), c.parts)
		if m.Status.ExitCode != c.exit || m.Status.Reason != c.reason {
			t.Errorf("%s: exit %d %q, want %d %q", c.name, m.Status.ExitCode, m.Status.Reason, c.exit, c.reason)
		}
		if m.Status.RunID != "merge-1" || m.Status.Seed != 7 || !m.Status.Start.Equal(time.Unix(100, 0)) {
			t.Errorf("%s: merged status names run %q seed %d start %s", c.name, m.Status.RunID, m.Status.Seed, m.Status.Start)
		}
		var want, got, gotStatus []string
		for _, pt := range c.parts {
			want = append(want, namesOfStatus(pt.Status.Scenarios)...)
		}
		slices.SortFunc(want, func(a, b string) int { return catalogIndex(a) - catalogIndex(b) })
		gotStatus = namesOfStatus(m.Status.Scenarios)
		for _, sc := range m.Scenarios {
			got = append(got, sc.Name)
		}
		if !slices.Equal(gotStatus, want) || (len(got) > 0 && !slices.Equal(got, want)) {
			t.Errorf("%s: scenarios %v / report %v, want %v (definition order)", c.name, gotStatus, got, want)
		}
	}
}

// A part's outcome survives its file: the parent reads back what the part
// wrote, verdict included.
func TestPartFileRoundTrip(t *testing.T) {
	p := flow.Defaults()
	p.Out, p.RunID, p.Part = t.TempDir(), "round-1", 2
	v := check.Verdict{Status: check.Success, Scenario: "chaos", Metrics: map[string]float64{"accepted": 600, "lost": 0}}
	want := Part{
		Status:    flow.Status{RunID: p.RunID, ExitCode: flow.ExitGate, Outcome: flow.OutcomeGate, Reason: "gate failed in chaos", Scenarios: []flow.ScenarioStatus{{Name: "chaos", Outcome: flow.OutcomeGate}}},
		Scenarios: []render.Scenario{{Name: "chaos", Verdict: &v, History: "out/x/chaos/history.jsonl", Duration: time.Minute, Labels: []string{"nightly"}}},
		Images:    []flow.ImageRef{{Service: "mta-a", Ref: "mailchaos/postfix:v1"}},
		Software:  []flow.Fact{{Name: "postfix (mta-a)", Value: "3.7.11"}},
	}
	if err := writePart(p.PartFile(p.Part), want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPart(p, p.Part)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Reason != want.Status.Reason || got.Scenarios[0].Verdict == nil || got.Scenarios[0].Verdict.Metrics["accepted"] != 600 ||
		got.Scenarios[0].Duration != time.Minute || got.Images[0] != want.Images[0] || got.Software[0] != want.Software[0] {
		t.Errorf("read back %+v\nwrote %+v", got, want)
	}
	if _, err := ReadPart(p, 3); err == nil {
		t.Error("a part that wrote nothing read without error")
	}
}

// Conclude writes the run-level files from the parts (and removes the
// parts' folder); after a second signal only status.json, exit 130.
func TestConclude(t *testing.T) {
	p := flow.Defaults()
	p.Out, p.RunID, p.Parallel = t.TempDir(), "conclude-1", 2
	skipped := func(name string) Part {
		return Part{Status: flow.Status{Scenarios: []flow.ScenarioStatus{{Name: name, Outcome: flow.OutcomeSkipped, SkipReason: "no standby"}}},
			Scenarios: []render.Scenario{{Name: name, Skipped: "no standby"}}}
	}
	if err := writePart(p.PartFile(1), skipped("region-loss")); err != nil {
		t.Fatal(err)
	}
	st := Conclude(p, time.Now(), []Part{skipped("region-loss"), skipped("standby-takeover")}, false)
	if st.ExitCode != flow.ExitHarness || !strings.Contains(st.Reason, "every selected scenario was skipped") {
		t.Errorf("status %d %q", st.ExitCode, st.Reason)
	}
	for _, f := range []string{flow.StatusFile, render.IndexName, "junit.xml", "MANIFEST.sha256"} {
		if _, err := os.Stat(filepath.Join(p.RunDir(), f)); err != nil {
			t.Errorf("run folder lacks %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(p.RunDir(), flow.PartsDir)); !os.IsNotExist(err) {
		t.Errorf("the parts' folder is still there (%v)", err)
	}
	back, err := flow.ReadStatus(p.RunDir())
	if err != nil || len(back.Scenarios) != 2 || back.Reason != st.Reason {
		t.Errorf("status.json: %+v (%v)", back, err)
	}

	p.RunID = "conclude-2"
	st = Conclude(p, time.Now(), []Part{skipped("region-loss")}, true)
	if st.ExitCode != flow.ExitInterrupted {
		t.Errorf("abandoned: exit %d %q", st.ExitCode, st.Reason)
	}
	entries, _ := os.ReadDir(p.RunDir())
	if len(entries) != 1 || entries[0].Name() != flow.StatusFile {
		t.Errorf("abandoned run folder holds %v, want status.json only", entries)
	}
}

func namesOfScenarios(scs []flow.Scenario) []string {
	var out []string
	for _, s := range scs {
		out = append(out, s.Name)
	}
	return out
}

func namesOfStatus(scs []flow.ScenarioStatus) []string {
	var out []string
	for _, s := range scs {
		out = append(out, s.Name)
	}
	return out
}

func indexIn(scs []flow.Scenario, s flow.Scenario) int {
	return slices.IndexFunc(scs, func(x flow.Scenario) bool { return x.Name == s.Name })
}

func catalogIndex(name string) int {
	return slices.IndexFunc(Catalog(), func(s flow.Scenario) bool { return s.Name == name })
}
