package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// region-partition: every link between regions (replication, deliveries
// across the WAN) splits for half the load phase and heals; each region
// keeps serving, replication catches up.
var _ = define(flow.Scenario{
	Name:   "region-partition",
	Proves: "a split between the regions loses no accepted mail, clients do not notice it, and replication catches up after the heal",
	Labels: []string{flow.LabelNightly},
	Needs:  flow.Needs{Regions: 2},
	Faults: []flow.FaultAt{
		{At: 0.2, For: 0.5, Spec: "partition:path=cross-region"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s")},
}, StrictGates...)
