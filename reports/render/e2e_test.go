package render

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/reports/evidence"
)

// TestRenderRealVerdict judges the fixture histories with the real checkers
// and renders the result: whatever check puts in a Verdict, render must
// show it without error, and the report must verify.
func TestRenderRealVerdict(t *testing.T) {
	out := t.TempDir()
	runID := "20260102-030405-cafe"
	dir := filepath.Join(out, runID)
	run := RunReport{RunID: runID, Env: Environment{Seed: 42}, Generated: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)}
	for _, f := range []fixture{{scenario: "clean"}, {scenario: "lossy", lose: 2}} {
		f.runID = runID
		p := filepath.Join(dir, f.scenario, HistoryName)
		os.MkdirAll(filepath.Dir(p), 0o755)
		f.writeHistory(t, p)
		v, err := check.Run(context.Background(), p, check.Policy{AllowClientDowntime: true, Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
		if err != nil {
			t.Fatalf("check %s: %v", f.scenario, err)
		}
		run.Scenarios = append(run.Scenarios, Scenario{Name: f.scenario, History: p, Verdict: &v})
	}
	if _, err := Write(out, run); err != nil {
		t.Fatal(err)
	}
	if clean := run.Scenarios[0].Verdict; clean.Status != check.Success {
		t.Errorf("the clean fixture was judged %s: %s", clean.Status, clean.Reason)
	}
	lossy := run.Scenarios[1].Verdict
	if lossy.Status != check.Failure || lossy.Ledger.Counts[check.ClassLost] == 0 {
		t.Fatalf("the lossy fixture was not judged lost: %s (%s)", lossy.Status, lossy.Reason)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if !strings.Contains(html, `<p class="big">FAIL</p>`) || strings.Count(html, "<svg") != 10 {
		t.Errorf("index.html: FAIL banner %v, %d charts", strings.Contains(html, "FAIL"), strings.Count(html, "<svg"))
	}
	for _, e := range lossy.Checks[0].Evidence {
		if e.MsgID != "" && !strings.Contains(html, e.MsgID) {
			t.Errorf("lost message %s not shown", e.MsgID)
		}
	}
	if r, err := evidence.Verify(context.Background(), dir, evidence.VerifyOptions{}); err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Err())
	}
	t.Logf("clean: %s — %s; lossy: %s — %s", run.Scenarios[0].Verdict.Status, run.Scenarios[0].Verdict.Reason, lossy.Status, lossy.Reason)
}
