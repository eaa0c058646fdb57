package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// client-partition: the primary region is cut off from the edge (every
// link from the edge into it: its MTAs and its stores); the edge's health
// checks must move all traffic to the other regions.
var _ = define(flow.Scenario{
	Name:   "client-partition",
	Proves: "when one region becomes unreachable from the edge, traffic moves to the other region without loss or client-visible downtime",
	Labels: []string{flow.LabelNightly},
	Needs:  flow.Needs{Regions: 2},
	Faults: []flow.FaultAt{
		{At: 0.2, For: 0.5, Spec: "partition:from=edge,to.region=primary"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s")},
}, StrictGates...)
