package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// region-loss: every node of the primary region is killed under load and
// comes back later with its volumes. Zero loss is the expectation: queued
// mail is on the region's disks, and the other regions serve clients
// meanwhile.
var _ = define(flow.Scenario{
	Name:   "region-loss",
	Proves: "losing a whole region for a while (SIGKILL, then back with its disks) loses no accepted mail and clients do not notice",
	Labels: []string{flow.LabelNightly, flow.LabelDR},
	Needs:  flow.Needs{Regions: 2},
	Faults: []flow.FaultAt{{At: 0.2, For: 0.5, Spec: "region-loss:region=primary"}},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 90s")},
}, StrictGates...)
