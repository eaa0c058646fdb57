package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// degraded-network: latency with jitter on the clients' SMTP and IMAP
// links, a bandwidth limit on the replication out of the primary region's
// stores (where the stack has such a link), and connection resets on a
// share of IMAP connections, overlapping.
var _ = define(flow.Scenario{
	Name:   "degraded-network",
	Proves: "a slow, lossy network (latency, jitter, bandwidth limits, resets) slows mail down but loses none, and retrying clients do not see downtime",
	Labels: []string{flow.LabelNightly},
	Faults: []flow.FaultAt{
		{At: 0.1, For: 0.7, Spec: "latency:from=clients,protocol=smtp:latency=150ms:jitter=100ms"},
		{At: 0.1, For: 0.7, Spec: "latency:from=clients,protocol=imap:latency=150ms:jitter=100ms"},
		{At: 0.2, For: 0.5, Spec: "bandwidth:from=store,to=store,from.region=primary:rate=128", Optional: true},
		{At: 0.3, For: 0.3, Spec: "reset-peer:from=clients,protocol=imap:after=1s:toxicity=0.2"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 90s")},
}, StrictGates...)
