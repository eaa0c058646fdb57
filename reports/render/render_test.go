package render

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/xml"
	"html/template"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/reports/evidence"
)

func writeSample(t *testing.T, fs ...fixture) (out, dir string, run RunReport) {
	t.Helper()
	out = t.TempDir()
	run = sampleRun(t, out, fs...)
	dir, err := Write(out, run)
	if err != nil {
		t.Fatal(err)
	}
	return out, dir, run
}

func TestWriteRunFolder(t *testing.T) {
	out, dir, _ := writeSample(t, fixture{scenario: "region-loss"}, fixture{scenario: "mta-crash", lose: 3})
	for _, n := range []string{JUnitName, VerdictName, IndexName, "region-loss/history.jsonl", "mta-crash/history.jsonl", "logs/edge.log",
		evidence.ManifestName, evidence.BundleName, evidence.BundleSumName} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("missing %s: %v", n, err)
		}
	}
	target, err := os.Readlink(filepath.Join(out, LatestName))
	if err != nil || target != "20260102-030405-beef" {
		t.Errorf("latest -> %q, %v", target, err)
	}
	r, err := evidence.Verify(context.Background(), filepath.Join(out, LatestName), evidence.VerifyOptions{})
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Err())
	}
	if r.Files != 8 {
		t.Errorf("manifest lists %d files, want 8 (verdict, junit, index, 2 histories, 3 logs) %v", r.Files, r.Checked)
	}
}

// A signed run verifies with its public key through out/latest, and a
// leftover of an interrupted earlier Write is cleared, not sealed.
func TestWriteSigned(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	out := t.TempDir()
	run := sampleRun(t, out, fixture{scenario: "region-loss"})
	run.SignKey = key
	leftover := filepath.Join(out, run.RunID, evidence.BundleName+".tmp12345")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, []byte("half a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := Write(out, run)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); err == nil {
		t.Errorf("%s survived Write", leftover)
	}
	r, err := evidence.Verify(context.Background(), filepath.Join(out, LatestName), evidence.VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)})
	if err != nil || !r.OK() || !r.SigValid || r.RunID != run.RunID {
		t.Fatalf("verify: ok %v, signature valid %v, run %q: %v %v", r.OK(), r.SigValid, r.RunID, err, r.Err())
	}
	html, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		t.Fatal(err)
	}
	want := template.HTMLEscapeString(evidence.CheckCommands(run.RunID, "pub.pem", "/tmp/"+run.RunID+".statement"))
	if !bytes.Contains(html, []byte(want)) || !bytes.Contains(html, []byte("-pubkey")) {
		t.Errorf("index.html does not show how to check the signature:\n%s", want)
	}
}

func TestJUnitParsesBack(t *testing.T) {
	_, dir, _ := writeSample(t, fixture{scenario: "region-loss"}, fixture{scenario: "mta-crash", lose: 3})
	b, err := os.ReadFile(filepath.Join(dir, JUnitName))
	if err != nil {
		t.Fatal(err)
	}
	var doc JUnitSuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("junit.xml does not parse: %v", err)
	}
	if len(doc.Suites) != 2 {
		t.Fatalf("%d suites, want 2", len(doc.Suites))
	}
	// verdict + 3 checks + 3 thresholds per scenario.
	if doc.Tests != 14 || doc.Failures != 3 || doc.Errors != 0 {
		t.Errorf("tests=%d failures=%d errors=%d, want 14 3 0", doc.Tests, doc.Failures, doc.Errors)
	}
	pass, fail := doc.Suites[0], doc.Suites[1]
	if pass.Name != "region-loss" || pass.Failures != 0 || fail.Name != "mta-crash" || fail.Failures != 3 {
		t.Errorf("suites: %s %d, %s %d", pass.Name, pass.Failures, fail.Name, fail.Failures)
	}
	names := map[string]*JUnitCase{}
	for i := range fail.Cases {
		names[fail.Cases[i].Name] = &fail.Cases[i]
	}
	for _, n := range []string{"verdict", "check ledger", "check imap-invariants", "check availability", "threshold lost == 0", "threshold client_visible_downtime_max < 5s", "threshold delivery_latency_p99 < 30s"} {
		if names[n] == nil {
			t.Errorf("no test case %q", n)
		}
	}
	// The failure carries the evidence: the lost message IDs and their ops.
	for _, n := range []string{"verdict", "check ledger", "threshold lost == 0"} {
		c := names[n]
		if c == nil || c.Failure == nil {
			t.Errorf("%s: no failure", n)
			continue
		}
		if !strings.Contains(c.Failure.Message, "lost") {
			t.Errorf("%s: message %q", n, c.Failure.Message)
		}
		if !regexp.MustCompile(`20260102-030405-beef\.smtp-\d\.\d+`).MatchString(c.Failure.Body) || !strings.Contains(c.Failure.Body, "history line 1234") {
			t.Errorf("%s: failure body lacks the message IDs and ops:\n%s", n, c.Failure.Body)
		}
	}
	props := map[string]string{}
	for _, p := range fail.Properties {
		props[p.Name] = p.Value
	}
	if props["seed"] != "42" || props["run_id"] != "20260102-030405-beef" || props["commit"] != "0123456789abcdef" {
		t.Errorf("properties: %v", props)
	}
}

func TestJUnitErrorAndUnknown(t *testing.T) {
	run := RunReport{RunID: "r", Scenarios: []Scenario{
		{Name: "broken", Err: "start store-a: timeout after 60s"},
		{Name: "unjudged"},
	}}
	doc := JUnit(run)
	if doc.Errors != 1 || doc.Failures != 1 {
		t.Fatalf("errors=%d failures=%d", doc.Errors, doc.Failures)
	}
	if e := doc.Suites[0].Cases[0].Error; e == nil || !strings.Contains(e.Message, "start store-a") {
		t.Errorf("harness error case: %+v", doc.Suites[0].Cases[0])
	}
	// "broken" is a harness error, "unjudged" unknown: the error outranks
	// unknown (a gate failure would outrank both).
	if run.Status() != Error || run.ExitCode() != 2 {
		t.Errorf("status %s exit %d, want error 2", run.Status(), run.ExitCode())
	}
}

func TestVerdictJSON(t *testing.T) {
	_, dir, _ := writeSample(t, fixture{scenario: "region-loss"}, fixture{scenario: "mta-crash", lose: 3})
	b, err := os.ReadFile(filepath.Join(dir, VerdictName))
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != ReportVersion || s.Status != Fail || s.ExitCode != 1 || len(s.Scenarios) != 2 {
		t.Fatalf("summary: version %d status %s exit %d scenarios %d", s.Version, s.Status, s.ExitCode, len(s.Scenarios))
	}
	v := s.Scenarios[1].Verdict
	if v == nil || v.Ledger.Counts[check.ClassLost] != 3 || s.Scenarios[1].History != "mta-crash/history.jsonl" {
		t.Errorf("scenario 2: %+v", s.Scenarios[1])
	}
	if s.Environment.Software[0].Name != "postfix (mta-a)" {
		t.Errorf("environment: %+v", s.Environment)
	}
}

var (
	svgRE      = regexp.MustCompile(`<svg[\s>]`)
	externalRE = regexp.MustCompile(`(?i)(src|href|action|poster|data)\s*=\s*["']?\s*(https?:)?//`)
	cssURLRE   = regexp.MustCompile(`(?i)url\(\s*["']?\s*(https?:)?//|@import`)
)

func TestHTMLSelfContained(t *testing.T) {
	_, dir, _ := writeSample(t, fixture{scenario: "region-loss"}, fixture{scenario: "mta-crash", lose: 3})
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if n := len(svgRE.FindAllString(html, -1)); n != 10 {
		t.Errorf("%d <svg> elements, want 10 (5 charts x 2 scenarios)", n)
	}
	for _, bad := range []*regexp.Regexp{externalRE, cssURLRE, regexp.MustCompile(`(?i)<script`), regexp.MustCompile(`(?i)<link\b`), regexp.MustCompile(`(?i)<iframe`)} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html loads something from outside: %q", m)
		}
	}
	for _, want := range []string{
		`<p class="big">FAIL</p>`,
		"20260102-030405-beef",
		"3 accepted messages lost",
		"20260102-030405-beef.smtp-", // an offending message ID
		"lost == 0", "client_visible_downtime_max_s",
		"region-loss", "region-a", // the fault timeline
		"postfix (mta-a)", "3.7.11", "sha256:2222", "ci-runner-3", "0123456789abcdef", // environment
		`href="logs/edge.log"`, `href="logs/mta-a.log"`, `href="logs/store-a.log"`,
		`href="mta-crash/history.jsonl"`, `href="verdict.json"`, `href="junit.xml"`, `href="MANIFEST.sha256"`,
		"sha256sum -c MANIFEST.sha256",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	// The run-level verdict comes before any chart.
	if strings.Index(html, "FAIL") > strings.Index(html, "<svg") {
		t.Error("the verdict is not at the top")
	}
	// Every local link points at a file of the run folder (or an anchor).
	for _, m := range regexp.MustCompile(`href="([^"#][^"]*)"`).FindAllStringSubmatch(html, -1) {
		if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
			t.Errorf("broken link %s", m[1])
		}
	}
}

func TestHTMLPass(t *testing.T) {
	_, dir, _ := writeSample(t, fixture{scenario: "steady-state"})
	b, _ := os.ReadFile(filepath.Join(dir, IndexName))
	if !bytes.Contains(b, []byte(`<p class="big">PASS</p>`)) {
		t.Error("a passing run does not say PASS")
	}
	if !bytes.Contains(b, []byte(`href="steady-state/history.jsonl"`)) {
		t.Error("no link to the history")
	}
}

func TestHistoryCopiedIn(t *testing.T) {
	out := t.TempDir()
	src := filepath.Join(t.TempDir(), "h.jsonl")
	acc := fixture{runID: "r1", scenario: "smoke"}.writeHistory(t, src)
	run := RunReport{RunID: "r1", Scenarios: []Scenario{{Name: "smoke", History: src, Verdict: fixture{runID: "r1", scenario: "smoke"}.verdict(acc)}}}
	dir, err := Write(out, run)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, HistoryName)); err != nil {
		t.Fatal("history not copied into the run folder")
	}
	// A second run moves latest.
	run.RunID = "r2"
	if _, err := Write(out, run); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(filepath.Join(out, LatestName)); target != "r2" {
		t.Errorf("latest -> %s", target)
	}
}

func TestStatsBoundedAndCorrect(t *testing.T) {
	p := filepath.Join(t.TempDir(), "h.jsonl")
	acc := fixture{runID: "r", scenario: "s"}.writeHistory(t, p)
	s, err := ReadStats(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.delivery.count != uint64(len(acc)) || s.DeliveryUnseen != 0 {
		t.Errorf("delivery: %d observed, %d unseen; %d accepted", s.delivery.count, s.DeliveryUnseen, len(acc))
	}
	if len(s.Faults) != 1 || s.Faults[0].Start != 20*sec || s.Faults[0].End != 34*sec || !s.Faults[0].Healed {
		t.Errorf("faults: %+v", s.Faults)
	}
	if got := s.FailedOps["smtp"]; len(got) != 1 || got[0].Start != 24*sec {
		t.Errorf("smtp failed ops: %+v", got)
	}
	var ok uint32
	for _, b := range s.buckets {
		ok += b[0].Accepted
	}
	if int(ok) != len(acc) {
		t.Errorf("accepted in buckets %d, want %d", ok, len(acc))
	}

	// A run of ten hours keeps MaxBuckets buckets, not one per 250 ms.
	long := NewStats(history.Record{RunID: "x"})
	for at := history.Offset(0); at < 10*3600*sec; at += sec {
		long.Add(history.Record{Type: history.TypeOp, Kind: history.KindIMAPFetch, Client: "c", Scope: history.ScopeOp, Outcome: history.OK, Start: at, End: at + 10*history.Offset(time.Millisecond)})
	}
	long.Finish()
	if long.Buckets() > MaxBuckets || long.Width < 10*time.Hour/MaxBuckets {
		t.Errorf("10 h run: %d buckets of %s", long.Buckets(), long.Width)
	}
	var n uint32
	for _, b := range long.buckets {
		n += b[0].OpsOK
	}
	if n != 36000 {
		t.Errorf("ops after coarsening: %d, want 36000", n)
	}
}

func TestLogHistQuantile(t *testing.T) {
	var h logHist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.19 {
			t.Errorf("q%.2f = %s, want within 19%% above %s", c.q, got, c.want)
		}
	}
}

// A scenario the stack could not serve is a JUnit skip with its reason,
// never a pass; a run of nothing but skips is an error (exit code 2).
func TestSkippedScenario(t *testing.T) {
	run := RunReport{RunID: "r", Scenarios: []Scenario{{Name: "region-loss", Skipped: "needs 2 regions, the stack has 1"}}}
	doc := JUnit(run)
	c := doc.Suites[0].Cases[0]
	if c.Skipped == nil || c.Skipped.Message != "needs 2 regions, the stack has 1" || c.Failure != nil || c.Error != nil {
		t.Fatalf("verdict case %+v", c)
	}
	if doc.Suites[0].Skipped != 1 {
		t.Errorf("suite skipped=%d", doc.Suites[0].Skipped)
	}
	if run.Status() != Error || run.ExitCode() != 2 {
		t.Errorf("only skips: %s exit %d, want error exit 2", run.Status(), run.ExitCode())
	}
	run.Scenarios = append(run.Scenarios, Scenario{Name: "steady-state", Verdict: &check.Verdict{Status: check.Success}})
	if run.Status() != Pass {
		t.Errorf("a pass beside a skip: %s", run.Status())
	}
	b, err := xml.Marshal(doc)
	if err != nil || !strings.Contains(string(b), `<skipped message="needs 2 regions, the stack has 1">`) {
		t.Errorf("junit: %s %v", b, err)
	}
}
