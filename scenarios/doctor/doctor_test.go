package doctor

import (
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// A result is one line: status, name (with its target), what was seen,
// and the fix only when the check did not pass.
func TestResultLine(t *testing.T) {
	for _, c := range []struct {
		r          Result
		want, nope []string
	}{
		{Result{Check: CheckSMTPGreeting, Status: OK, Detail: "220 hi", Fix: "never shown"},
			[]string{"ok ", "smtp-greeting", "220 hi"}, []string{"fix:", "never shown"}},
		{Result{Check: CheckLink, Target: "wan-1", Status: Fail, Detail: "still passes", Fix: "route it through Toxiproxy"},
			[]string{"FAIL", "link wan-1", "still passes", "-- fix: route it through Toxiproxy"}, nil},
		{Result{Check: CheckEdgeControl, Status: Warn, Detail: "no edge control", Fix: "add an edge"},
			[]string{"warn", "edge-control", "-- fix: add an edge"}, nil},
	} {
		line := c.r.String()
		if strings.Contains(line, "\n") {
			t.Errorf("%q is more than one line", line)
		}
		for _, w := range c.want {
			if !strings.Contains(line, w) {
				t.Errorf("%q lacks %q", line, w)
			}
		}
		for _, n := range c.nope {
			if strings.Contains(line, n) {
				t.Errorf("%q has %q", line, n)
			}
		}
	}
}

func TestSummaryAndFailed(t *testing.T) {
	rs := []Result{
		{Check: CheckSMTPGreeting, Status: OK},
		{Check: CheckEdgeServing, Status: Warn},
		{Check: CheckEdgeDrain, Status: Fail},
		{Check: CheckLink, Target: "l1", Status: Fail},
	}
	if got, want := Summary(rs), "1 ok, 1 warning(s), 2 failed (edge-drain, link l1)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if f := Failed(rs); len(f) != 2 || f[0].Check != CheckEdgeDrain || f[1].Name() != "link l1" {
		t.Errorf("Failed = %+v", f)
	}
	if Failed(rs[:2]) != nil {
		t.Error("warnings counted as failures")
	}
}

// The warning and the failures about edge control name the scenarios of
// the catalog that will be skipped for the missing command.
func TestSkippedWithout(t *testing.T) {
	cat := []flow.Scenario{
		{Name: "steady"},
		{Name: "upgrade", Needs: flow.Needs{EdgeControl: []string{"drain", "enable", "sessions"}}},
		{Name: "takeover", Needs: flow.Needs{EdgeControl: []string{"drain", "enable"}}},
	}
	for _, c := range []struct {
		cat  []flow.Scenario
		cmd  string
		want string
	}{
		{cat, "", "takeover and upgrade will be skipped"},
		{cat, "drain", "takeover and upgrade will be skipped"},
		{cat, "sessions", "upgrade will be skipped"},
		{cat, "serving", "the scenarios that need it will be skipped"},
		{nil, "", "the scenarios that need it will be skipped"},
		{append(cat, flow.Scenario{Name: "a", Needs: flow.Needs{EdgeControl: []string{"drain"}}}), "drain", "a, takeover and upgrade will be skipped"},
	} {
		c0 := &checker{o: Options{Catalog: c.cat}}
		if got := c0.skippedWithout(c.cmd); got != c.want {
			t.Errorf("skippedWithout(%q) = %q, want %q", c.cmd, got, c.want)
		}
	}
}
