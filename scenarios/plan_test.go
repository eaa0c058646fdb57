package scenarios

import (
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// Against a single-region stack with no edge, the scenarios that need a
// second region, an edge, a standby or upgrade images are skipped with
// what the stack lacks; the others are planned with every fault resolved.
func TestPlansOnASingleRegionStack(t *testing.T) {
	p := flow.Defaults()
	p.Stack = "testdata/one-region/stack.yaml"
	p.Seed = 7
	want := map[string]string{
		"steady-state":       "runs",
		"chaos":              "runs",
		"mta-crash":          "runs",
		"degraded-network":   "runs",
		"end-of-data-cut":    "runs",
		"client-partition":   "needs 2 regions, the stack has 1",
		"region-partition":   "needs 2 regions, the stack has 1",
		"region-loss":        "needs 2 regions, the stack has 1",
		"region-destruction": "needs 2 regions, the stack has 1",
		"standby-takeover":   "needs a service with role standby; needs an edge with control commands (drain, enable)",
		"rolling-upgrade":    "needs an upgrade_image on every mta (missing on mx1); needs an upgrade_image on every store (missing on box1)",
	}
	for _, s := range Catalog() {
		plan, err := flow.NewPlan(p, s)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		got := "runs"
		if r := plan.SkipReason(); r != "" {
			got = r
		}
		w, ok := want[s.Name]
		if !ok {
			t.Errorf("%s: no expectation: add the scenario to this table", s.Name)
			continue
		}
		if !strings.HasPrefix(got, w) {
			t.Errorf("%s: %q, want %q", s.Name, got, w)
		}
		if got == "runs" {
			for _, f := range plan.Faults {
				for _, spec := range f.Resolution.Specs {
					if faults.IsSelector(spec.Target) || spec.Target == "" {
						t.Errorf("%s: %s resolved to %q", s.Name, f.Spec, spec.Target)
					}
				}
			}
		}
	}
}

// The degraded-network scenario leaves its optional replication fault out
// where the stack has no replication link, and says so.
func TestOptionalFaultLeftOut(t *testing.T) {
	p := flow.Defaults()
	p.Stack = "testdata/one-region/stack.yaml"
	for _, s := range Catalog() {
		if s.Name != "degraded-network" {
			continue
		}
		plan, err := flow.NewPlan(p, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Omitted) != 1 || !strings.Contains(plan.Omitted[0], "bandwidth") {
			t.Errorf("omitted %v, want the bandwidth fault", plan.Omitted)
		}
		if len(plan.Faults) != 3 {
			t.Errorf("%d faults planned, want 3", len(plan.Faults))
		}
	}
}

// Every built-in scenario is served by the reference stack: none is
// skipped, and every selector picks something.
func TestEveryScenarioPlansOnTheReference(t *testing.T) {
	p := params
	for _, s := range Catalog() {
		plan, err := flow.NewPlan(p, s)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		if r := plan.SkipReason(); r != "" {
			t.Errorf("%s skipped on the reference: %s", s.Name, r)
		}
		if len(plan.Faults) != len(s.Faults) {
			t.Errorf("%s: %d of %d faults planned (%v)", s.Name, len(plan.Faults), len(s.Faults), plan.Omitted)
		}
	}
}

// A scenario that names a target the stack does not have is refused
// before anything starts, naming it once.
func TestPlanRefusesUnknownNames(t *testing.T) {
	p := flow.Defaults()
	p.Stack = "testdata/one-region/stack.yaml"
	s := flow.Scenario{Name: "x", Proves: "x", Labels: []string{"x"}, Faults: []flow.FaultAt{{At: 0.1, For: 0.1, Spec: "kill:mx2"}}}
	_, err := flow.NewPlan(p, s)
	if err == nil || !strings.Contains(err.Error(), `no node "mx2" (did you mean "mx1"?)`) {
		t.Fatalf("err %v", err)
	}
	if strings.Count(err.Error(), "mx2") != 1 {
		t.Errorf("the name is repeated: %v", err)
	}
}
