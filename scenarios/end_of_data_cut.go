package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// end-of-data-cut: a share of SMTP connections is cut right after the
// client's final "." and before the server's reply. Those sends are
// indeterminate; the client retries them with the same message ID, so a
// second copy is a recovered duplicate (allowed), never a lost or a plain
// duplicated message.
var _ = define(flow.Scenario{
	Name:   "end-of-data-cut",
	Proves: "connections cut after the final '.' leave only indeterminate sends, which are resolved (recovered or not delivered); no accepted message is lost or duplicated",
	Labels: []string{flow.LabelNightly},
	Faults: []flow.FaultAt{{At: 0.2, For: 0.5, Spec: "smtp-cut:from=clients,protocol=smtp:mode=after:toxicity=0.3"}},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s")},
}, StrictGates...)
