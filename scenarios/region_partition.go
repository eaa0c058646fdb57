package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// region-partition: the WAN link between the regions splits for half the
// load phase and heals; each region keeps serving, replication catches up.
var _ = define(flow.Scenario{
	Name:   "region-partition",
	Proves: "a split between the regions loses no accepted mail, clients do not notice it, and replication catches up after the heal",
	Labels: []string{flow.LabelNightly},
	Faults: []flow.FaultAt{
		{At: 0.2, For: 0.5, Spec: "partition:wan-a-b"},
		{At: 0.2, For: 0.5, Spec: "partition:wan-b-a"},
		{At: 0.2, For: 0.5, Spec: "partition:lmtp-b-a"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s")},
}, StrictGates...)
