package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// client-partition: region a is cut off from the edge (its MTA and its
// store); the edge's health checks must move all traffic to region b.
var _ = define(flow.Scenario{
	Name:   "client-partition",
	Proves: "when one region becomes unreachable from the edge, traffic moves to the other region without loss or client-visible downtime",
	Labels: []string{flow.LabelNightly},
	Faults: []flow.FaultAt{
		{At: 0.2, For: 0.5, Spec: "partition:edge-mta-a"},
		{At: 0.2, For: 0.5, Spec: "partition:edge-mta-a-submission"},
		{At: 0.2, For: 0.5, Spec: "partition:edge-store-a"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s")},
}, StrictGates...)
