package scenarios

import (
	"context"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/reports/evidence"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// --sign-key reaches the run folder: the report is signed for its run and
// says by which key.
func TestRenderRunSigns(t *testing.T) {
	priv, pubPath, pub, err := evidence.WriteKeyPair(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	suite.mu.Lock()
	saved := results
	results.list, results.facts = []render.Scenario{{Name: "steady-state", Skipped: "the stack has no standby"}}, nil
	suite.mu.Unlock()
	t.Cleanup(func() { suite.mu.Lock(); results = saved; suite.mu.Unlock() })

	p := flow.Defaults()
	p.Out, p.RunID, p.SignKey = t.TempDir(), "sign-1", priv
	if err := renderRun(p, collect(flow.Status{RunID: p.RunID, ExitCode: flow.ExitHarness})); err != nil {
		t.Fatal(err)
	}
	r, err := evidence.Verify(context.Background(), filepath.Join(p.Out, render.LatestName), evidence.VerifyOptions{PublicKey: pub})
	if err != nil || !r.OK() || !r.SigValid || r.RunID != "sign-1" {
		t.Fatalf("verify with %s: %v %v", pubPath, err, r.Err())
	}
	page, err := os.ReadFile(filepath.Join(p.RunDir(), render.IndexName))
	if err != nil || !strings.Contains(html.UnescapeString(string(page)), evidence.Fingerprint(pub)) {
		t.Errorf("index.html does not name the signing key %s (%v)", evidence.Fingerprint(pub), err)
	}

	p.RunID, p.SignKey = "sign-2", pubPath // a public key cannot sign
	if err := renderRun(p, collect(flow.Status{RunID: p.RunID, ExitCode: flow.ExitHarness})); err == nil || !strings.Contains(err.Error(), "--sign-key") {
		t.Fatalf("signing with a public key: %v", err)
	}
}
