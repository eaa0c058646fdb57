package scenarios

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
	"github.com/mailchaos/mailchaos/scenarios/matchers"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gtypes "github.com/onsi/gomega/types"
)

// Gate is one assertion on a scenario's verdict: a spec labelled "gate",
// whose failure is a verdict on the system under test (exit code 1).
type Gate struct {
	// Text is the spec's text, e.g. "loses no accepted message".
	Text string
	// Matcher judges the verdict.
	Matcher func() gtypes.GomegaMatcher
}

// Gates maps the gate names a scenario file uses (flow.GateNames) to
// their specs. ReplicasKept passes a run that read no replica (the stack
// declares none): only a stack with replicas is held to them.
var Gates = map[string]Gate{
	flow.GateNoLoss:          {"loses no accepted message", matchers.HaveNoLostMessages},
	flow.GateReplicas:        {"keeps every replica complete", matchers.HaveCompleteReplicas},
	flow.GateIMAP:            {"keeps the IMAP invariants", matchers.KeepIMAPInvariants},
	flow.GateNoDowntime:      {"shows clients no downtime", matchers.HaveNoClientVisibleDowntime},
	flow.GateMeetsThresholds: {"meets its thresholds", matchers.MeetThresholds},
	flow.GateRecoveryPoint:   {"reports its recovery point", RecoveryPointMeasured},
}

// phaseTimeout is Ginkgo's bound of a phase whose own bound is d: a
// minute more, so the phase ends on its own deadline (see phase) and
// reports why before Ginkgo would cut it.
func phaseTimeout(d time.Duration) NodeTimeout { return NodeTimeout(d + time.Minute) }

// define adds a scenario to the suite: an Ordered container whose specs are
// the phases (harness work: a failure is exit code 2) and then the gates
// the scenario names (labelled "gate": a failure is exit code 1).
// ContinueOnFailure lets every gate be judged even when an earlier one
// failed; a phase whose prerequisite failed is skipped, not failed again.
func define(s flow.Scenario) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var gates []Gate
	for _, name := range s.Gates {
		gates = append(gates, Gates[name]) // Validate checked every name
	}
	suite.mu.Lock()
	suite.catalog = append(suite.catalog, s)
	suite.mu.Unlock()

	Describe(s.Name, Ordered, ContinueOnFailure, Label(s.Labels...), func() {
		var r *flow.Run
		p := suite.params // set by RunSuite before the tree is built
		steady := p.Steady + flow.CheckTimeout + 3*time.Minute
		load := p.Duration + 6*time.Minute
		converge := p.Converge + flow.ReadTimeout

		BeforeAll(func() {
			if sig := interrupted(); sig != "" {
				// A signal that came before Ginkgo listened: the run stops
				// here, in order, like one that came later.
				Fail("interrupted (" + sig + ") before the scenario started")
			}
			var err error
			r, err = flow.Start(p, s, suite.progress, GinkgoWriter)
			if err == nil && r.Skipped != "" {
				// The stack cannot serve the scenario: say so everywhere
				// (console, JUnit, report, status.json); nothing started.
				fmt.Fprintf(os.Stderr, "mailchaos: %s skipped: %s\n", s.Name, r.Skipped)
				recordSkip(r)
				Skip(flow.SkipPrefix + r.Skipped)
			}
			begin(r)
			// Cleanups run last-in first-out: heal, then tear down. They
			// run on a first interrupt too (Ginkgo's own handling), each
			// with its full node timeout.
			DeferCleanup(func(ctx SpecContext) {
				testHook("panic@teardown")
				err := finish(ctx, r)
				Expect(err).NotTo(HaveOccurred(), "tear the stack down")
			}, NodeTimeout(flow.TeardownTimeout+flow.CheckTimeout+time.Minute))
			DeferCleanup(func(ctx SpecContext) {
				Expect(r.HealForCleanup(ctx)).To(Succeed())
			}, NodeTimeout(flow.HealTimeout+time.Minute))
			Expect(err).NotTo(HaveOccurred(), "prepare scenario %s", s.Name)
			AddReportEntry("parameters", fmt.Sprintf("run %s seed %d stack %s duration %s rate %g/s users %d",
				p.RunID, p.Seed, p.Stack, p.Duration, p.Rate, p.Users))
			AddReportEntry("targets", strings.Join(r.Plan.Describe(), "\n"))
		})

		It("brings the stack up", func(ctx SpecContext) {
			phase(ctx, r, flow.StepUp, flow.UpTimeout, r.Up)
		}, phaseTimeout(flow.UpTimeout))

		It("runs a clean steady load", func(ctx SpecContext) {
			phase(ctx, r, flow.StepSteady, steady, r.SteadyState, flow.StepUp)
		}, phaseTimeout(steady))

		It("serves the steady load within its thresholds", Label(flow.GateLabel), func() {
			skipUnless(r, flow.StepSteady)
			Expect(r.Steady).To(matchers.MeetThresholds(), "steady state before any fault")
		})

		It("runs load under the fault timeline", func(ctx SpecContext) {
			phase(ctx, r, flow.StepLoad, load, r.Load, flow.StepUp, flow.StepSteady)
		}, phaseTimeout(load))

		It("heals every fault", func(ctx SpecContext) {
			phase(ctx, r, flow.StepHeal, flow.HealTimeout, r.Heal, flow.StepUp)
		}, phaseTimeout(flow.HealTimeout))

		It("recovers from every fault", Label(flow.GateLabel), func() {
			skipUnless(r, flow.StepHeal)
			Expect(r.HealProblems).To(BeEmpty(), "every fault healed and every node ready within %s after the load phase", flow.HealTimeout)
		})

		It("converges", func(ctx SpecContext) {
			phase(ctx, r, flow.StepConverge, converge, r.Converge, flow.StepUp, flow.StepHeal)
		}, phaseTimeout(converge))

		It("reads every mailbox", func(ctx SpecContext) {
			phase(ctx, r, flow.StepFinalRead, flow.FinalReadTimeout, r.FinalRead, flow.StepUp)
		}, phaseTimeout(flow.FinalReadTimeout))

		It("judges the history", func(ctx SpecContext) {
			phase(ctx, r, flow.StepCheck, flow.CheckTimeout, r.Check, flow.StepUp)
			AddReportEntry("figures", Figures(r.Verdict))
			fmt.Fprintf(GinkgoWriter, "%s: %s\n", s.Name, Figures(r.Verdict))
		}, phaseTimeout(flow.CheckTimeout))

		for _, g := range gates {
			It(g.Text, Label(flow.GateLabel), func() {
				skipUnless(r, flow.StepCheck)
				Expect(r.Verdict).To(g.Matcher())
			})
		}
	})
	return nil
}

// phase runs phase name of r unless a phase it needs failed (then it is
// skipped: the failure is already reported once). Ginkgo ends a node by
// cancelling its context, with no deadline a wait could plan by: the
// phase gets bound as its context's deadline, so every wait inside derives
// its own from it (Ginkgo's node timeout is a minute longer).
func phase(sctx context.Context, r *flow.Run, name flow.Step, bound time.Duration, fn func(context.Context) error, needs ...flow.Step) {
	skipUnless(r, needs...)
	testHook("panic@" + string(name))
	ctx, cancel := context.WithTimeout(sctx, bound)
	defer cancel()
	Expect(fn(ctx)).To(Succeed())
}

func skipUnless(r *flow.Run, phases ...flow.Step) {
	if r == nil {
		Skip("scenario was not prepared")
	}
	if err := r.Need(phases...); err != nil {
		Skip(err.Error())
	}
}

// Figures is the one-line summary of a verdict quoted in reports and logs:
// accepted, lost, duplicated, longest client-visible downtime, delivery p99.
func Figures(v check.Verdict) string {
	m := func(name string) string {
		x, ok := v.Metrics[name]
		if !ok {
			return "n/a"
		}
		if len(name) > 2 && name[len(name)-2:] == "_s" {
			return (time.Duration(x * float64(time.Second))).Round(time.Millisecond).String()
		}
		return fmt.Sprintf("%g", x)
	}
	return fmt.Sprintf("status=%s accepted=%s lost=%s duplicated=%s corrupted=%s max_downtime=%s delivery_p99=%s faults=%s",
		v.Status, m("accepted"), m("lost"), m("duplicated"), m("corrupted"),
		m("client_visible_downtime_max_s"), m("delivery_latency_p99_s"), m("faults"))
}

// RecoveryPointMeasured succeeds when the verdict could measure the
// recovery point: a complete final read judged the ledger. The number of
// lost messages is the recovery point; it is reported, not gated.
func RecoveryPointMeasured() gtypes.GomegaMatcher {
	return WithTransform(func(v check.Verdict) string {
		if !v.Ledger.FinalRead {
			return "unknown: no complete final read"
		}
		AddReportEntry("recovery point", fmt.Sprintf("%d accepted deliveries lost with the region's disks (of %d accepted messages)",
			v.Ledger.Counts[check.ClassLost], v.Ledger.Accepted))
		return "measured"
	}, Equal("measured"))
}
