package check

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The fixed metric names of Verdict.Metrics. Names ending in _s are seconds.
// Besides these, the pattern names of MetricPatterns are valid.
var MetricNames = []string{
	// Ledger: sending side per message, classes per delivery.
	"messages", "accepted", "indeterminate", "failed", "deliveries", "final_copies", "final_read",
	"ok", "lost", "duplicated", "recovered_duplicate", "corrupted", "unexpected", "recovered", "not_delivered", "late", "expunged",
	// IMAP invariants.
	"uidvalidity_changes", "uid_reused", "uid_order", "reappeared", "flags_lost", "imap_violations",
	// Replicas (measured only when the history reads replicas).
	"replica_missing", "replica_corrupted", "replica_extra", "replicas_read",
	// Availability over every protocol.
	"ops", "failed_ops", "attempts", "failed_attempts",
	"client_visible_windows", "client_visible_downtime_max_s", "client_visible_downtime_total_s",
	"raw_error_windows", "raw_error_downtime_max_s", "raw_error_downtime_total_s",
	// Delivery and drain.
	"delivery_latency_p50_s", "delivery_latency_p90_s", "delivery_latency_p99_s", "delivery_latency_p999_s", "delivery_latency_max_s",
	"delivery_unseen", "queue_drain_max_s", "queue_drain_unseen",
	// Faults.
	"faults",
}

// MetricPatterns are the per-protocol and per-kind metric names, as regular
// expressions: <proto> is a protocol ("smtp", "imap"), <kind> an op kind
// ("smtp.send", "imap.fetch").
var MetricPatterns = []string{
	`^[a-z0-9-]+_(client_visible|raw_error)_downtime_(max|total)_s$`,
	`^[a-z0-9-]+_(client_visible|raw_error)_windows$`,
	`^[a-z0-9-]+_(failed_ops|failed_attempts|ops|attempts)$`,
	`^latency_[a-z0-9-]+\.[a-z0-9.-]+_(p50|p90|p99|p999|max)_s$`,
	`^latency_[a-z0-9-]+\.[a-z0-9.-]+_count$`,
}

var (
	metricSet      = map[string]bool{}
	metricPatterns []*regexp.Regexp
	thresholdRE    = regexp.MustCompile(`^\s*([A-Za-z0-9_.-]+)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$`)
)

func init() {
	for _, n := range MetricNames {
		metricSet[n] = true
	}
	for _, p := range MetricPatterns {
		metricPatterns = append(metricPatterns, regexp.MustCompile(p))
	}
}

// KnownMetric reports whether name is a metric the checkers can produce.
func KnownMetric(name string) bool {
	if metricSet[name] {
		return true
	}
	for _, re := range metricPatterns {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// ParseThreshold parses "<metric> <op> <value>". op is one of == != < <= >
// >=. value is a number, or a Go duration ("30s", "250ms", "0s") for a
// seconds metric. A metric may be named without its "_s" suffix when the
// value is a duration: "delivery_latency_p99 < 30s" is
// "delivery_latency_p99_s < 30". An unknown metric name is an error.
func ParseThreshold(expr string) (Threshold, error) {
	m := thresholdRE.FindStringSubmatch(expr)
	if m == nil {
		return Threshold{}, fmt.Errorf("threshold %q: want \"<metric> <op> <value>\" with op one of == != < <= > >=", expr)
	}
	name, op, val := m[1], m[2], m[3]
	isDur := false
	var v float64
	if f, err := strconv.ParseFloat(val, 64); err == nil {
		v = f
	} else if d, err := time.ParseDuration(val); err == nil {
		v, isDur = d.Seconds(), true
	} else {
		return Threshold{}, fmt.Errorf("threshold %q: value %q is neither a number nor a duration", expr, val)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Threshold{}, fmt.Errorf("threshold %q: value %q is not finite", expr, val)
	}
	if !KnownMetric(name) && KnownMetric(name+"_s") {
		name += "_s"
	}
	if !KnownMetric(name) {
		return Threshold{}, fmt.Errorf("threshold %q: unknown metric %q", expr, name)
	}
	if isDur && !strings.HasSuffix(name, "_s") {
		return Threshold{}, fmt.Errorf("threshold %q: duration value for %q, which is not a seconds metric", expr, name)
	}
	return Threshold{Expr: strings.TrimSpace(expr), Metric: name, Op: op, Value: v}, nil
}

// ParseThresholds parses every expression and reports all problems at once.
func ParseThresholds(exprs []string) ([]Threshold, error) {
	var out []Threshold
	var errs []string
	for _, e := range exprs {
		t, err := ParseThreshold(e)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out = append(out, t)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse thresholds: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Eval evaluates the threshold over metrics. A metric absent from metrics
// was not measured: the result is Unknown, never a pass.
func (t Threshold) Eval(metrics map[string]float64) ThresholdResult {
	r := ThresholdResult{Threshold: t, Status: Unknown}
	v, ok := metrics[t.Metric]
	if !ok {
		return r
	}
	r.Measured = &v
	var pass bool
	switch t.Op {
	case "==":
		pass = v == t.Value
	case "!=":
		pass = v != t.Value
	case "<":
		pass = v < t.Value
	case "<=":
		pass = v <= t.Value
	case ">":
		pass = v > t.Value
	case ">=":
		pass = v >= t.Value
	}
	if pass {
		r.Status = Success
	} else {
		r.Status = Failure
	}
	return r
}
