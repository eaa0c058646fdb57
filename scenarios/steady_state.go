package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// steady-state: no faults, the baseline every other scenario is read
// against. It is also the smoke scenario of `make test`.
var _ = define(flow.Scenario{
	Name:   "steady-state",
	Proves: "with nothing broken, every accepted message is delivered exactly once and byte-identical, and no client sees an error it cannot retry past",
	Labels: []string{flow.LabelSmoke, flow.LabelNightly},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 30s", "failed_ops == 0")},
}, StrictGates...)
