package check

import (
	"strings"
	"testing"
)

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		expr   string
		metric string
		op     string
		value  float64
		err    string
	}{
		{"lost == 0", "lost", "==", 0, ""},
		{"  duplicated<=2 ", "duplicated", "<=", 2, ""},
		{"client_visible_downtime_max_s == 0", "client_visible_downtime_max_s", "==", 0, ""},
		{"client_visible_downtime_max == 0s", "client_visible_downtime_max_s", "==", 0, ""},
		{"delivery_latency_p99 < 30s", "delivery_latency_p99_s", "<", 30, ""},
		{"delivery_latency_p99_s < 250ms", "delivery_latency_p99_s", "<", 0.25, ""},
		{"latency_smtp.send_p999_s < 2", "latency_smtp.send_p999_s", "<", 2, ""},
		{"imap_client_visible_downtime_total_s != 1.5", "imap_client_visible_downtime_total_s", "!=", 1.5, ""},
		{"lsot == 0", "", "", 0, "unknown metric"},
		{"lost = 0", "", "", 0, "want"},
		{"lost == zero", "", "", 0, "neither"},
		{"lost == 1s", "", "", 0, "not a seconds metric"},
		{"lost == NaN", "", "", 0, "not finite"},
		{"", "", "", 0, "want"},
	}
	for _, tc := range tests {
		th, err := ParseThreshold(tc.expr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.expr, err, tc.err)
			}
			continue
		}
		if err != nil || th.Metric != tc.metric || th.Op != tc.op || th.Value != tc.value {
			t.Errorf("%q = %+v, %v", tc.expr, th, err)
		}
	}
}

func TestThresholdEval(t *testing.T) {
	m := map[string]float64{"lost": 0, "duplicated": 2}
	for expr, want := range map[string]Status{
		"lost == 0": Success, "lost != 0": Failure, "duplicated < 2": Failure, "duplicated <= 2": Success,
		"duplicated > 1": Success, "duplicated >= 3": Failure, "corrupted == 0": Unknown,
	} {
		th, err := ParseThreshold(expr)
		if err != nil {
			t.Fatal(err)
		}
		r := th.Eval(m)
		if r.Status != want {
			t.Errorf("%s = %s, want %s", expr, r.Status, want)
		}
		if (r.Measured == nil) != (want == Unknown) {
			t.Errorf("%s measured = %v", expr, r.Measured)
		}
	}
}

func TestThresholdsGateTheVerdict(t *testing.T) {
	recs := mkHist(send("m1", ok, 0, 10), seen("m1", inbox1, 1, 40010), fin("m1", inbox1, 1, 1), done(1))
	v := mustRun(t, recs, Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
	if v.Status != Failure || len(v.Thresholds) != 2 || v.Thresholds[0].Status != Success || v.Thresholds[1].Status != Failure {
		t.Fatalf("verdict %s: %+v", v.Status, v.Thresholds)
	}
	if !strings.Contains(v.Reason, "delivery_latency_p99 < 30s") || *v.Thresholds[1].Measured != 40 {
		t.Fatalf("reason %q measured %v", v.Reason, *v.Thresholds[1].Measured)
	}
	if _, err := RunRecords(t.Context(), recs, Policy{Thresholds: []string{"lost == 0", "nope < 1", "also_nope > 2"}}); err == nil ||
		!strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "also_nope") {
		t.Fatalf("unknown metrics: %v", err)
	}
}

// Every metric name the checkers produce is one a threshold may name.
func TestMetricsAreKnown(t *testing.T) {
	var buf strings.Builder
	_ = genHistory(&buf, 200)
	v, err := RunReader(t.Context(), "h", strings.NewReader(buf.String()), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	for name := range v.Metrics {
		if !KnownMetric(name) {
			t.Errorf("metric %q is produced but not known", name)
		}
	}
	for _, name := range MetricNames {
		if strings.HasPrefix(name, "queue_drain_") {
			continue // measured only when the history has a heal
		}
		if strings.HasPrefix(name, "replica") {
			continue // measured only when the history reads replicas (TestReplicaMetricsOnAFullHistory)
		}
		if _, ok := v.Metrics[name]; !ok {
			t.Errorf("metric %q is known but not produced on a full history", name)
		}
	}
}
