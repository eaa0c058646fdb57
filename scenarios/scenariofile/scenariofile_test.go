package scenariofile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/scenarios/flow"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// A file with three mistakes gives one error listing all three, each with
// its line, and no scenario.
func TestEveryProblemAtOnce(t *testing.T) {
	const file = `name: team-chaos
proves: the team's own promise
labels: [nightly]
faults:
  - {at: 0.2, for: 0.3, spec: "partition:from=edge,too=store"}
  - {at: 1.5, for: 0.1, spec: "kill:role=mta"}
thresholds: ["lost = = 0"]
`
	_, err := Parse("team.yaml", []byte(file))
	if err == nil {
		t.Fatal("a broken file parsed")
	}
	msg := err.Error()
	for _, want := range []string{
		"team.yaml: 3 problems in the scenario file",
		`team.yaml:5: fault #1: selector "from=edge,too=store": unknown key "too" for a link selector (did you mean "to"?)`,
		"team.yaml:6: fault #2: at: 1.5 is outside the load phase",
		`team.yaml:7: threshold "lost = = 0"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestParseProblems(t *testing.T) {
	base := "name: x\nproves: y\nlabels: [nightly]\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"not a mapping", "- a\n", "a scenario file is a mapping"},
		{"missing name", "proves: y\nlabels: [a]\n", "name is missing"},
		{"missing labels", "name: x\nproves: y\n", "labels are missing"},
		{"unknown key", base + "fualts: []\n", `unknown key "fualts" (did you mean "faults"?)`},
		{"unknown fault kind", base + "faults: [{at: 0.1, for: 0.1, spec: \"explode:x\"}]\n", `unknown kind "explode"`},
		{"bad param", base + "faults: [{at: 0.1, for: 0.1, spec: \"latency:from=clients:latency=fast\"}]\n", `latency: "fast" is not a duration`},
		{"fractions past the end", base + "faults: [{at: 0.6, for: 0.6, spec: \"kill:role=mta\"}]\n", "ends after the load phase"},
		{"bad duration", base + "min_duration: soon\n", `min_duration: "soon" is not a duration`},
		{"spec missing", base + "faults: [{at: 0.1}]\n", "spec is missing"},
		{"unknown gate", base + "gates: [no-los]\n", `unknown gate "no-los" (did you mean "no-loss"?)`},
		{"loose without gates", base + "strict: false\n", "strict: false needs gates"},
		{"nemesis without menu", base + "nemesis: {count: 2}\n", "nemesis: menu is missing"},
		{"nemesis bad menu", base + "nemesis: {menu: [\"kill:rol=mta\"]}\n", `unknown key "rol"`},
		{"nemesis hold", base + "nemesis: {menu: [\"kill:role=mta\"], hold: [10s, 2s]}\n", "max 2s is below min 10s"},
		{"edge control", base + "needs: {edge_control: [drian]}\n", `unknown command "drian" (did you mean "drain"?)`},
		{"regions", base + "needs: {regions: two}\n", `regions: "two"`},
		{"yaml NaN offset", base + "faults: [{at: .nan, spec: \"kill:role=mta\"}]\n", "neither a fraction"},
		{"NaN offset", base + "faults: [{at: NaN, spec: \"kill:role=mta\"}]\n", "outside the load phase"},
		{"Inf offset", base + "faults: [{for: +Inf, spec: \"kill:role=mta\"}]\n", "outside the load phase"},
		{"endless min_duration", base + "min_duration: 2562047h\n", "x.yaml:4: min_duration: 2562047h is longer than 24h0m0s, the longest load phase"},
		{"fault after any run", base + "faults: [{at: 25h, spec: \"kill:role=mta\"}]\n", "fault #1: at: 25h is longer than 24h0m0s"},
		{"endless hold", base + "nemesis: {menu: [\"kill:role=mta\"], hold: [1s, 9999h]}\n", "nemesis: hold: 9999h is longer than 24h0m0s"},
		{"fractional count", base + "nemesis: {menu: [\"kill:role=mta\"], count: 1.5}\n", `nemesis: count: "1.5" is not a count (1 to 10000)`},
		{"NaN count", base + "nemesis: {menu: [\"kill:role=mta\"], max_active: NaN}\n", `nemesis: max_active: "NaN" is not a count`},
		{"huge count", base + "nemesis: {menu: [\"kill:role=mta\"], count: 99999999999}\n", `nemesis: count: "99999999999" is not a count`},
		{"no regions", base + "needs: {regions: 0}\n", `needs: regions: "0" is not a count of regions`},
		{"NaN toxicity", base + "faults: [{at: 0.1, spec: \"latency:from=clients:toxicity=NaN\"}]\n", `toxicity: "NaN" is not a finite number`},
		{"blank label", "name: x\nproves: y\nlabels: '  '\n", "labels are missing"},
		{"a second document", base + "---\nname: z\n", "x.yaml:4: a second YAML document (after ---)"},
		{"garbage after ---", base + "---\n}\n", "did not find expected"},
		{"a carriage return alone", base + "strict: true\rstrict: false\n", "x.yaml:4: a carriage return (\\r) not followed by a newline"},
		{"a next-line character", base + "gates: [no-loss]\u0085strict: false\n", "x.yaml:4: a next-line character (U+0085)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseScenario(t *testing.T) {
	s, err := Parse("x.yaml", []byte(`name: x
proves: y
labels: [nightly, team]
needs: {regions: 2, roles: [standby], upgrade: [mta], edge_control: [drain]}
min_duration: 2m
faults:
  - {at: 0.1, for: 0.2, spec: "stop:role=store,region=primary"}
  - {at: 30s, for: 1m, spec: "latency:from=clients,protocol=imap:latency=100ms", optional: true}
thresholds: ["delivery_latency_p99 < 60s"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.MinDuration != 2*time.Minute || s.Needs.Regions != 2 || s.Needs.Roles[0] != "standby" || s.Needs.EdgeControl[0] != "drain" {
		t.Errorf("fields: %+v", s)
	}
	if len(s.Faults) != 2 || s.Faults[0].At != 0.1 || s.Faults[1].AtTime != 30*time.Second || s.Faults[1].ForTime != time.Minute || !s.Faults[1].Optional {
		t.Errorf("faults: %+v", s.Faults)
	}
	// Strict by default: the zero-loss thresholds and gates, then its own.
	if got := s.Policy.Thresholds; len(got) != len(flow.GateThresholds)+1 || got[len(got)-1] != "delivery_latency_p99 < 60s" {
		t.Errorf("thresholds %v", got)
	}
	if strings.Join(s.Gates, ",") != strings.Join(flow.StrictGates, ",") {
		t.Errorf("gates %v", s.Gates)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestLoadAllFolderAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	one := "name: one\nproves: p\nlabels: [team]\n"
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(one), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(strings.Replace(one, "one", "two", 1)), 0o644)
	list, err := LoadAll([]string{dir})
	if err != nil || len(list) != 2 || list[0].Name != "one" || list[1].Name != "two" {
		t.Fatalf("%v %v", list, err)
	}
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(one), 0o644)
	if _, err := LoadAll([]string{dir}); err == nil || !strings.Contains(err.Error(), `scenario "one" is defined twice`) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := LoadAll([]string{filepath.Join(dir, "nope.yaml")}); err == nil {
		t.Error("a missing file loaded")
	}
	if _, err := LoadAll([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "holds no *.yaml") {
		t.Errorf("empty folder: %v", err)
	}
}

// The schema accepts every built-in scenario file and the examples here,
// and rejects a file with an unknown key.
func TestSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("schema/scenario.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../builtin/*.yaml")
	if len(files) < 10 {
		t.Fatalf("%d built-in files", len(files))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if err := sch.Validate(asJSON(t, data)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if err := sch.Validate(asJSON(t, []byte("name: x\nproves: y\nlabels: [a]\nfualts: []\n"))); err == nil {
		t.Error("schema accepts an unknown key")
	}
}

func asJSON(t *testing.T, data []byte) any {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
