package scenarios

import (
	"flag"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/scenarios/flow"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// params are the suite's parameters under `go test`: the defaults of
// mailchaos run, shortened so the smoke scenario fits `make test`, with
// paths relative to this package's folder. Override them after -args:
//
//	go test ./scenarios -args -label nightly -duration 2m
var params = func() flow.Params {
	p := flow.Defaults()
	p.Out = "../out"
	p.Duration = 30 * time.Second
	p.Steady = 5 * time.Second
	p.Converge = 60 * time.Second
	p.Timeout = 20 * time.Minute
	return p
}()

func init() { params.Bind(flag.CommandLine) }

// TestScenarios runs the scenarios the label filter selects (smoke by
// default). Under go test every failure is exit code 1; `mailchaos run`
// maps gate and harness failures to 1 and 2.
func TestScenarios(t *testing.T) {
	RegisterFailHandler(Fail)
	suiteCfg, reporterCfg := GinkgoConfiguration()
	p := params
	labelSet := false
	flag.Visit(func(f *flag.Flag) { labelSet = labelSet || f.Name == "label" })
	if p.Scenarios != "" && !labelSet {
		p.Label = "" // named scenarios run whatever their labels
	}
	if suiteCfg.LabelFilter != "" {
		p.Label = suiteCfg.LabelFilter
	}
	if err := AddScenarioFiles(p.ScenarioFiles); err != nil {
		t.Fatalf("scenario files: %v", err)
	}
	p, err := Prepare(p)
	if err != nil {
		t.Fatalf("parameters: %v", err)
	}
	st := RunSuite(t, p, suiteCfg, reporterCfg)
	t.Logf("run %s: exit code %d (%s) %s; reports in %s", p.RunID, st.ExitCode, st.Outcome, st.Reason, p.RunDir())
}
