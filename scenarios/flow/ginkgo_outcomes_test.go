package flow_test

import (
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/scenarios/flow"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// These specs fail on purpose, each the way a scenario can fail, so that
// TestGinkgoOutcomesMapToExitCodes classifies a report made by Ginkgo
// itself rather than a hand-built one. Their "[FAIL]" output is expected.

var got *flow.Status

var _ = Describe("passes", Ordered, func() {
	It("runs a phase", func() {})
	It("judges a gate", Label(flow.GateLabel), func() {})
})

var _ = Describe("gate-fails", Ordered, ContinueOnFailure, func() {
	It("runs a phase", func() {})
	It("judges a gate", Label(flow.GateLabel), func() { Expect(1).To(Equal(2), "lost 1 message") })
	It("judges another gate", Label(flow.GateLabel), func() {})
})

var _ = Describe("setup-fails", Ordered, func() {
	BeforeAll(func() { Fail("Docker engine unreachable") })
	It("judges a gate", Label(flow.GateLabel), func() {})
})

var _ = Describe("gate-hangs", func() {
	It("judges a gate", Label(flow.GateLabel), func(ctx SpecContext) { <-ctx.Done() }, NodeTimeout(50*time.Millisecond))
})

var _ = Describe("cleanup-fails", Ordered, func() {
	BeforeAll(func() { DeferCleanup(func() { Fail("teardown failed") }) })
	It("judges a gate", Label(flow.GateLabel), func() {})
})

var _ = Describe("phase-fails", Ordered, func() {
	It("runs a phase", func() { Fail("load generator broke") })
	It("judges a gate", Label(flow.GateLabel), func() {})
})

var _ = Describe("stack-lacks-it", Ordered, func() {
	BeforeAll(func() { Skip(flow.SkipPrefix + "needs 2 regions, the stack has 1") })
	It("runs a phase", func() {})
	It("judges a gate", Label(flow.GateLabel), func() {})
})

var _ = ReportAfterSuite("classify", func(r Report) {
	st := flow.Classify(r)
	got = &st
})

type quietT struct{}

func (quietT) Fail() {}

func TestGinkgoOutcomesMapToExitCodes(t *testing.T) {
	RegisterFailHandler(Fail)
	suiteCfg, reporterCfg := GinkgoConfiguration()
	suiteCfg.RandomizeAllSpecs = false
	reporterCfg.Succinct = true
	reporterCfg.NoColor = true
	t.Log("the specs below fail on purpose")
	RunSpecs(quietT{}, "exit code mapping", suiteCfg, reporterCfg)
	if got == nil {
		t.Fatal("no status")
	}
	want := map[string]string{
		"passes":        flow.OutcomePass,
		"gate-fails":    flow.OutcomeGate,
		"setup-fails":   flow.OutcomeHarness,
		"gate-hangs":    flow.OutcomeHarness,
		"cleanup-fails": flow.OutcomeHarness,
		"phase-fails":   flow.OutcomeHarness,
		// A skip is listed with its reason, never as a pass.
		"stack-lacks-it": flow.OutcomeSkipped,
	}
	for _, sc := range got.Scenarios {
		if w, ok := want[sc.Name]; !ok || sc.Outcome != w {
			t.Errorf("%s: outcome %s, want %s (%+v)", sc.Name, sc.Outcome, w, sc.Failures)
		}
		if sc.Name == "stack-lacks-it" && sc.SkipReason != "needs 2 regions, the stack has 1" {
			t.Errorf("skip reason %q", sc.SkipReason)
		}
		if sc.Name == "passes" && (len(sc.Phases) != 2 || sc.Phases[0].Phase != "runs a phase" || sc.Phases[1].Phase != "judges a gate") {
			t.Errorf("phases of passes: %+v", sc.Phases)
		}
		delete(want, sc.Name)
	}
	if len(want) > 0 {
		t.Errorf("scenarios missing from the status: %v", want)
	}
	if got.ExitCode != flow.ExitGate {
		t.Errorf("exit code %d, want %d (a gate failure outranks harness failures): %s", got.ExitCode, flow.ExitGate, got.Reason)
	}
}
