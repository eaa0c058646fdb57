package check

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// thresholdSeeds are the thresholds of the built-in scenario files and a
// few of every shape.
func thresholdSeeds(f *testing.F) []string {
	files, err := filepath.Glob("../../scenarios/builtin/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no built-in scenario files to seed from: %v", err)
	}
	quoted := regexp.MustCompile(`"([a-z0-9_.-]+ *(?:==|!=|<=|>=|<|>) *[^"]+)"`)
	var out []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range quoted.FindAllStringSubmatch(string(data), -1) {
			out = append(out, m[1])
		}
	}
	return append(out, "lost == 0", "client_visible_downtime_max == 0s", "latency_smtp.send_p999_s < 2",
		"lost == NaN", "lost < Inf", "delivery_latency_p99_s <= 1e308", "lost >= 0x1p-2", "x", "")
}

// FuzzParseThreshold: a threshold that parses names a known metric, one of
// the six operators and a finite value; its expression parses to itself,
// and so does its canonical form "<metric> <op> <number>".
func FuzzParseThreshold(f *testing.F) {
	for _, s := range thresholdSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		th, err := ParseThreshold(expr)
		if err != nil {
			if th != (Threshold{}) {
				t.Fatalf("%q: error %v with a threshold %+v", expr, err, th)
			}
			return
		}
		if !KnownMetric(th.Metric) || !slices.Contains([]string{"==", "!=", "<", "<=", ">", ">="}, th.Op) || math.IsNaN(th.Value) || math.IsInf(th.Value, 0) {
			t.Fatalf("%q parsed to %+v", expr, th)
		}
		again, err := ParseThreshold(th.Expr)
		if err != nil || again != th {
			t.Fatalf("%q: its expression %q parses to %+v, %v", expr, th.Expr, again, err)
		}
		canon := th.Metric + " " + th.Op + " " + strconv.FormatFloat(th.Value, 'g', -1, 64)
		c, err := ParseThreshold(canon)
		if err != nil || c.Metric != th.Metric || c.Op != th.Op || c.Value != th.Value {
			t.Fatalf("%q: canonical %q parses to %+v, %v", expr, canon, c, err)
		}
		// Evaluated, a measured value gives a pass or a failure, never unknown.
		if r := th.Eval(map[string]float64{th.Metric: 0}); r.Status == Unknown {
			t.Fatalf("%q on a measured metric is unknown", expr)
		}
	})
}
