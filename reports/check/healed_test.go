package check

import (
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

func TestFaultsHealed(t *testing.T) {
	inject := fault(history.KindFaultInject, "kill", "mta-a", 10, 11)
	healEv := fault(history.KindFaultHeal, "kill", "mta-a", 40, 41)
	failed := inject
	failed.Outcome = history.Fail
	heal := phase(history.PhaseHeal, 0, 50)
	for _, tc := range []struct {
		name string
		recs []history.Record
		want Status // "" means the check is absent
	}{
		{"no fault: nothing to check", []history.Record{heal}, ""},
		{"injected and healed", []history.Record{inject, healEv, heal}, Success},
		{"left in place after the heal phase", []history.Record{inject, heal}, Failure},
		{"inject failed", []history.Record{failed, healEv, heal}, Failure},
		{"no heal phase yet", []history.Record{inject}, Unknown},
	} {
		v := mustRun(t, mkHist(append(tc.recs, send("m1", ok, 0, 5))...), Policy{})
		r := result(v, CheckFaultsHealed)
		if r.Status != tc.want {
			t.Errorf("%s: %s (%s), want %q", tc.name, r.Status, r.Reason, tc.want)
		}
		if tc.want == Failure && len(r.Evidence) != 1 {
			t.Errorf("%s: evidence %+v, want the one fault", tc.name, r.Evidence)
		}
	}
}
