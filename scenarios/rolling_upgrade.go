package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// rolling-upgrade: the MTA tier, then the store tier, is rolled node by
// node to its upgrade image (drain at the edge, wait for sessions, stop,
// replace on the same volumes, wait ready, re-enable) while mail flows;
// then both are rolled back the same way. `make rehearse FROM=.. TO=..`
// runs it with other image sets.
var _ = define(flow.Scenario{
	Name:      "rolling-upgrade",
	Proves:    "an upgrade rolled node by node under load, and its rollback, lose no accepted mail and clients do not notice",
	Labels:    []string{flow.LabelNightly, flow.LabelUpgrade},
	Rehearsal: true,
	Faults: []flow.FaultAt{
		// Rollback faults are built before the upgrade runs, so they roll
		// back to the image each tier had at the start.
		{At: 0.05, For: 0.2, Spec: "upgrade:mta"},
		{At: 0.27, For: 0.2, Spec: "upgrade:store"},
		{At: 0.5, For: 0.2, Spec: "rollback:store"},
		{At: 0.72, For: 0.2, Spec: "rollback:mta"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s")},
}, StrictGates...)
