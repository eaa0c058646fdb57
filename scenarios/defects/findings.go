package defects

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// Finding is one failing class of a run, with the figure that shows it.
type Finding struct {
	// Class is one of the finding classes (Lost, Downtime, ...).
	Class string `json:"class"`
	// Detail is a short figure or reason, e.g. "41" or "longest 18.2s".
	Detail string `json:"detail,omitempty"`
}

// String renders the finding as "class (detail)".
func (f Finding) String() string {
	if f.Detail == "" {
		return f.Class
	}
	return f.Class + " (" + f.Detail + ")"
}

// ledgerClasses are the ledger classes in the order findings list them.
var ledgerClasses = []check.Class{check.ClassLost, check.ClassDuplicated, check.ClassCorrupted, check.ClassUnexpected, check.ClassLate, check.ClassRecoveredDuplicate}

// Findings returns the failing classes of a scenario's verdict (nil: no
// verdict) and of its run status (the steady-state gate, which the final
// verdict does not hold), one finding per class, in a stable order.
func Findings(v *check.Verdict, st *flow.ScenarioStatus) []Finding {
	var out []Finding
	add := func(class, detail string) {
		if i := slices.IndexFunc(out, func(f Finding) bool { return f.Class == class }); i >= 0 {
			if out[i].Detail == "" {
				out[i].Detail = detail
			}
			return
		}
		out = append(out, Finding{Class: class, Detail: detail})
	}
	if v != nil {
		for _, r := range v.Checks {
			switch r.Status {
			case check.Failure:
				checkFindings(v, r.Name, add)
			case check.Unknown:
				// Replicas without a final read have nothing to be compared
				// with: the same one finding as the ledger's.
				if r.Name == check.CheckLedger || (r.Name == check.CheckReplicas && !v.Ledger.FinalRead) {
					add(NoFinalRead, "")
				} else {
					add(Unmeasured, r.Name)
				}
			}
		}
		for _, t := range v.Thresholds {
			switch t.Status {
			case check.Failure:
				class, detail := thresholdFinding(t)
				add(class, detail)
			case check.Unknown:
				// Without a final read the ledger metrics are unmeasured:
				// that is one finding, not one per threshold.
				if t.Metric == "final_read" || isLedgerMetric(t.Metric) {
					add(NoFinalRead, "")
				} else {
					add(Unmeasured, t.Metric)
				}
			}
		}
	}
	if st != nil {
		for _, f := range st.Failures {
			if f.Outcome != flow.OutcomeGate {
				continue
			}
			if strings.Contains(f.Spec, "steady") {
				add(SteadyGate, firstLine(f.Message))
			} else if len(out) == 0 {
				// A failed gate the verdict does not explain is still a
				// finding: a clean run with one is a false alarm.
				add(OtherGate, f.Spec)
			}
		}
	}
	return out
}

// checkFindings adds the classes a failed check stands for.
func checkFindings(v *check.Verdict, name string, add func(class, detail string)) {
	switch name {
	case check.CheckLedger:
		n := 0
		for _, cl := range ledgerClasses {
			if c := v.Ledger.Counts[cl]; c > 0 && failingClass(v.Policy, cl) {
				add(string(cl), fmt.Sprint(c))
				n++
			}
		}
		if n == 0 {
			add(OtherGate, "ledger")
		}
	case check.CheckIMAP:
		add(IMAPInvariant, imapDetail(v.Metrics))
	case check.CheckAvailability:
		add(Downtime, "longest "+seconds(v.Metrics, "client_visible_downtime_max_s"))
	case check.CheckReplicas:
		add(ReplicaMissing, replicaDetail(v))
	default:
		add(OtherGate, name)
	}
}

// failingClass mirrors reports/check: which ledger classes fail the ledger
// under the verdict's policy.
func failingClass(p check.Policy, cl check.Class) bool {
	switch cl {
	case check.ClassLate:
		return !p.AllowLate
	case check.ClassRecoveredDuplicate:
		return p.RejectRecoveredDuplicates
	}
	return true
}

func isLedgerMetric(m string) bool {
	return slices.ContainsFunc(ledgerClasses, func(c check.Class) bool { return strings.ReplaceAll(string(c), "-", "_") == m })
}

var imapMetrics = []struct{ metric, what string }{
	{"uidvalidity_changes", "UIDVALIDITY changes"}, {"uid_reused", "UIDs reused"},
	{"uid_order", "UIDs out of order"}, {"reappeared", "reappeared"}, {"flags_lost", "flags lost"},
}

func imapDetail(m map[string]float64) string {
	var parts []string
	for _, x := range imapMetrics {
		if n := m[x.metric]; n > 0 {
			parts = append(parts, fmt.Sprintf("%g %s", n, x.what))
		}
	}
	return strings.Join(parts, ", ")
}

// replicaDetail names each failing replica with its count of missing
// messages ("replica-2: 41"), and of corrupted ones if any; from the metrics
// when the verdict has no per-replica summary.
func replicaDetail(v *check.Verdict) string {
	var parts []string
	for _, r := range v.Replicas {
		if r.Missing+r.Corrupted == 0 {
			continue
		}
		p := fmt.Sprintf("%s: %d", r.Name, r.Missing)
		if r.Corrupted > 0 {
			p += fmt.Sprintf(", %d corrupted", r.Corrupted)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		var ms []string
		for _, m := range []string{"replica_missing", "replica_corrupted"} {
			if n, ok := v.Metrics[m]; ok && n > 0 {
				ms = append(ms, fmt.Sprintf("%s %g", m, n))
			}
		}
		return strings.Join(ms, ", ")
	}
	return strings.Join(parts, "; ")
}

var (
	downtimeMetric = regexp.MustCompile(`(^|_)client_visible_`)
	failedOps      = regexp.MustCompile(`(^|_)failed_ops$`)
	rawErrors      = regexp.MustCompile(`(^|_)(failed_attempts$|raw_error_)`)
)

// thresholdFinding names the class of a failed threshold.
func thresholdFinding(t check.ThresholdResult) (class, detail string) {
	measured := "unmeasured"
	if t.Measured != nil {
		measured = fmtValue(t.Metric, *t.Measured)
	}
	limit := fmt.Sprintf("%s, limit %s %s", measured, t.Op, fmtValue(t.Metric, t.Value))
	m := t.Metric
	switch {
	case isLedgerMetric(m):
		return strings.ReplaceAll(m, "_", "-"), measured
	case m == "replica_missing" || m == "replica_corrupted":
		return ReplicaMissing, m + " " + measured
	case slices.ContainsFunc(imapMetrics, func(x struct{ metric, what string }) bool { return x.metric == m }), m == "imap_violations":
		return IMAPInvariant, m + " " + measured
	case downtimeMetric.MatchString(m):
		return Downtime, limit
	case strings.HasPrefix(m, "delivery_latency_"):
		return DeliveryLatency, strings.TrimPrefix(strings.TrimSuffix(m, "_s"), "delivery_latency_") + " " + limit
	case m == "final_read":
		return NoFinalRead, ""
	case failedOps.MatchString(m):
		return FailedOps, limit
	case rawErrors.MatchString(m):
		return RawErrors, m + " " + limit
	}
	return OtherGate, t.Expr + " (" + measured + ")"
}

func fmtValue(metric string, x float64) string {
	if strings.HasSuffix(metric, "_s") {
		return fmt.Sprintf("%.1fs", x)
	}
	if x == math.Trunc(x) {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%g", x)
}

func seconds(m map[string]float64, metric string) string {
	x, ok := m[metric]
	if !ok {
		return "unmeasured"
	}
	return fmt.Sprintf("%.1fs", x)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
