package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// degraded-network: latency with jitter on the client links, a bandwidth
// limit and latency on the replication link, and connection resets on a
// share of IMAP connections, overlapping.
var _ = define(flow.Scenario{
	Name:   "degraded-network",
	Proves: "a slow, lossy network (latency, jitter, bandwidth limits, resets) slows mail down but loses none, and retrying clients do not see downtime",
	Labels: []string{flow.LabelNightly},
	Faults: []flow.FaultAt{
		{At: 0.1, For: 0.7, Spec: "latency:client-smtp:latency=150ms:jitter=100ms"},
		{At: 0.1, For: 0.7, Spec: "latency:client-imap:latency=150ms:jitter=100ms"},
		{At: 0.2, For: 0.5, Spec: "bandwidth:wan-a-b:rate=128"},
		{At: 0.3, For: 0.3, Spec: "reset-peer:client-imap:after=1s:toxicity=0.2"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 90s")},
}, StrictGates...)
