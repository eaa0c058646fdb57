package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// mta-crash: the stores of the primary region are stopped so that its
// MTAs queue what they accept, then one of those MTAs is SIGKILLed with
// that queue on its disk and restarted; when the stores return, the queue
// must be delivered.
var _ = define(flow.Scenario{
	Name:   "mta-crash",
	Proves: "an MTA killed with mail in its queue delivers that queue after restart: accepted means durable",
	Labels: []string{flow.LabelNightly},
	Faults: []flow.FaultAt{
		{At: 0.1, For: 0.6, Spec: "stop:role=store,region=primary"},
		{At: 0.35, For: 0.2, Spec: "kill:role=mta,region=primary,mode=one"},
	},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 120s")},
}, StrictGates...)
