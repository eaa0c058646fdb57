package scenarios

import (
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// An interrupted run is exit code 2 whatever else it found, its reason
// first; what the classification found stays in the reason.
func TestMarkInterrupted(t *testing.T) {
	for _, c := range []struct {
		st   flow.Status
		want string
	}{
		{flow.Status{ExitCode: flow.ExitPass, Outcome: flow.OutcomePass}, "interrupted at a/load (SIGINT)"},
		{flow.Status{ExitCode: flow.ExitGate, Outcome: flow.OutcomeGate, Reason: "gate failed in a"}, "interrupted at a/load (SIGINT); gate failed in a"},
		{flow.Status{ExitCode: flow.ExitHarness, Outcome: flow.OutcomeHarness, Reason: "harness failed in a"}, "interrupted at a/load (SIGINT); harness failed in a"},
	} {
		st := c.st
		markInterrupted(&st, "interrupted at a/load (SIGINT)")
		if st.ExitCode != flow.ExitHarness || st.Outcome != flow.OutcomeHarness || st.Reason != c.want {
			t.Errorf("%+v marked: exit %d %s %q, want exit 2 %q", c.st, st.ExitCode, st.Outcome, st.Reason, c.want)
		}
	}
}

// The reason names the scenario and the phase it started last; a run
// interrupted before any scenario began says so.
func TestInterruptReasonAndLastStarted(t *testing.T) {
	early := &flow.Run{S: flow.Scenario{Name: "early"}, Started: time.Unix(10, 0)}
	late := &flow.Run{S: flow.Scenario{Name: "late"}, Started: time.Unix(20, 0)}
	if got := lastStarted([]*flow.Run{late, early}); got != late {
		t.Errorf("last started: %v", got.S.Name)
	}
	if got := interruptReason("SIGTERM", late); got != "interrupted at late/start (SIGTERM)" {
		t.Errorf("reason %q", got)
	}
	if got := interruptReason("--timeout 20s", nil); got != "interrupted before any scenario started (--timeout 20s)" {
		t.Errorf("reason %q", got)
	}
}
