package flow

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/onsi/ginkgo/v2/types"
)

func validParams(t *testing.T) Params {
	p := Defaults()
	p.Stack = filepath.Join(t.TempDir(), "stack.yaml")
	if err := os.WriteFile(p.Stack, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	if err := validParams(t).Validate(); err != nil {
		t.Fatal(err)
	}
}

// The default stack is the one embedded in the binary: it validates from
// any working folder, and a builtin name that does not exist is named.
func TestBuiltinStack(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Chdir(t.TempDir())
	p := Defaults()
	if err := p.Validate(); err != nil {
		t.Fatalf("defaults outside the checkout: %v", err)
	}
	path, err := p.StackPath()
	if err != nil || filepath.Base(path) != "stack.yaml" {
		t.Fatalf("StackPath() = %q, %v", path, err)
	}
	p.Stack = "builtin:nope"
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "--stack builtin:nope") || !strings.Contains(err.Error(), "builtin:reference") {
		t.Fatalf("Validate(builtin:nope) = %v", err)
	}
}

func TestBindParsesEveryFlag(t *testing.T) {
	p := Defaults()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	p.Bind(fs)
	err := fs.Parse([]string{"--stack", "s.yaml", "--duration", "2m", "--rate", "25.5", "--users", "200",
		"--seed", "7", "--out", "o", "--from", "v1", "--to", "v2", "--label", "nightly && !dr", "--run-id", "dev-scn-1", "--sign-key", "k.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stack != "s.yaml" || p.Duration != 2*time.Minute || p.Rate != 25.5 || p.Users != 200 || p.Seed != 7 ||
		p.Out != "o" || p.From != "v1" || p.To != "v2" || p.Label != "nightly && !dr" || p.RunID != "dev-scn-1" || p.SignKey != "k.pem" {
		t.Fatalf("parsed %+v", p)
	}
}

// Validate must report every problem at once, each naming its flag.
func TestValidateReportsAllProblems(t *testing.T) {
	p := validParams(t)
	p.Stack = "/nonexistent/stack.yaml"
	p.Duration = time.Second
	p.Rate = 0
	p.Users = 0
	p.Seed = -1
	p.From = "v1"
	p.Label = "nightly &&"
	p.RunID = "Bad ID"
	p.Progress = "fancy"
	p.SignKey = p.Stack // a file, not a key
	err := p.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, flag := range []string{"--stack", "--duration", "--rate", "--users", "--seed", "--from", "--label", "--run-id", "--progress", "--sign-key"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error does not name %s:\n%v", flag, err)
		}
	}
}

func TestParseImageSet(t *testing.T) {
	cases := []struct {
		in      string
		tag     string
		images  map[string]string
		wantErr bool
	}{
		{in: ""},
		{in: "v2", tag: "v2"},
		{in: "mta-a=mailchaos/mta:v2, mta-b=mailchaos/mta:v2", images: map[string]string{"mta-a": "mailchaos/mta:v2", "mta-b": "mailchaos/mta:v2"}},
		{in: "mta-a=Bad Image", wantErr: true},
		{in: "mta-a=x:1,mta-a=x:2", wantErr: true},
		{in: "v2 beta", wantErr: true},
	}
	for _, c := range cases {
		s, err := ParseImageSet(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseImageSet(%q) err = %v", c.in, err)
			continue
		}
		if s.Tag != c.tag || len(s.Images) != len(c.images) {
			t.Errorf("ParseImageSet(%q) = %+v", c.in, s)
		}
		for k, v := range c.images {
			if s.Images[k] != v {
				t.Errorf("ParseImageSet(%q)[%s] = %q, want %q", c.in, k, s.Images[k], v)
			}
		}
	}
	if got := WithTag("registry:5000/mailchaos/mta:v1", "v2"); got != "registry:5000/mailchaos/mta:v2" {
		t.Errorf("WithTag = %s", got)
	}
	if got := WithTag("mailchaos/mta", "v2"); got != "mailchaos/mta:v2" {
		t.Errorf("WithTag = %s", got)
	}
}

// spec builds a spec report of scenario scn.
func spec(scn, text string, state types.SpecState, gate bool, node types.NodeType) types.SpecReport {
	s := types.SpecReport{
		ContainerHierarchyTexts:  []string{scn},
		ContainerHierarchyLabels: [][]string{{"nightly"}},
		LeafNodeType:             types.NodeTypeIt,
		LeafNodeText:             text,
		State:                    state,
		RunTime:                  time.Second,
	}
	if gate {
		s.LeafNodeLabels = []string{GateLabel}
	}
	if state.Is(types.SpecStateFailureStates) {
		s.Failure = types.Failure{Message: "boom\nmore", FailureNodeType: node}
		if node == types.NodeTypeIt {
			s.Failure.FailureNodeContext = types.FailureNodeIsLeafNode
		} else {
			s.Failure.FailureNodeContext = types.FailureNodeInContainer
		}
	}
	return s
}

// skipped is a scenario whose set-up skipped it because the stack lacks
// what it needs.
func skipped(scn, reason string) types.SpecReport {
	s := spec(scn, "brings the stack up", types.SpecStateSkipped, false, 0)
	s.Failure.Message = SkipPrefix + reason
	return s
}

func TestClassify(t *testing.T) {
	pass := func(scn string) []types.SpecReport {
		return []types.SpecReport{
			spec(scn, "brings the stack up", types.SpecStatePassed, false, 0),
			spec(scn, "loses no accepted message", types.SpecStatePassed, true, 0),
		}
	}
	cases := []struct {
		name    string
		specs   []types.SpecReport
		code    int
		reason  string
		outcome map[string]string
	}{
		{name: "all passed", specs: append(pass("a"), pass("b")...), code: ExitPass},
		{name: "gate assertion failed", code: ExitGate, reason: "gate failed in b",
			specs: append(pass("a"),
				spec("b", "brings the stack up", types.SpecStatePassed, false, 0),
				spec("b", "loses no accepted message", types.SpecStateFailed, true, types.NodeTypeIt)),
			outcome: map[string]string{"a": OutcomePass, "b": OutcomeGate}},
		{name: "set-up failed", code: ExitHarness, reason: "harness failed in a",
			specs: []types.SpecReport{
				spec("a", "brings the stack up", types.SpecStateFailed, false, types.NodeTypeBeforeAll),
				spec("a", "loses no accepted message", types.SpecStateSkipped, true, 0)},
			outcome: map[string]string{"a": OutcomeHarness}},
		{name: "a gate spec that timed out is the harness", code: ExitHarness,
			specs:   []types.SpecReport{spec("a", "loses no accepted message", types.SpecStateTimedout, true, types.NodeTypeIt)},
			outcome: map[string]string{"a": OutcomeHarness}},
		{name: "a gate spec whose cleanup failed is the harness", code: ExitHarness,
			specs:   []types.SpecReport{spec("a", "loses no accepted message", types.SpecStateFailed, true, types.NodeTypeCleanupAfterAll)},
			outcome: map[string]string{"a": OutcomeHarness}},
		{name: "a panic in a gate spec is the harness", code: ExitHarness,
			specs: []types.SpecReport{spec("a", "loses no accepted message", types.SpecStatePanicked, true, types.NodeTypeIt)}},
		{name: "interrupted", code: ExitHarness,
			specs: []types.SpecReport{spec("a", "runs load", types.SpecStateInterrupted, false, types.NodeTypeIt)}},
		{name: "gate outranks harness", code: ExitGate, reason: "gate failed in a; harness failed in b",
			specs: []types.SpecReport{
				spec("a", "loses no accepted message", types.SpecStateFailed, true, types.NodeTypeIt),
				spec("b", "brings the stack up", types.SpecStateFailed, false, types.NodeTypeBeforeAll)}},
		{name: "nothing ran", code: ExitHarness, reason: "no scenario ran",
			specs: []types.SpecReport{spec("a", "x", types.SpecStateSkipped, false, 0)}},
		{name: "every scenario skipped by the stack", code: ExitHarness, reason: "every selected scenario was skipped: the stack cannot serve them: a (needs 2 regions",
			specs:   []types.SpecReport{skipped("a", "needs 2 regions, the stack has 1")},
			outcome: map[string]string{"a": OutcomeSkipped}},
		{name: "a skip beside a pass is listed, not a pass", code: ExitPass, reason: "skipped: b (needs a service with role standby)",
			specs:   append(pass("a"), skipped("b", "needs a service with role standby")),
			outcome: map[string]string{"a": OutcomePass, "b": OutcomeSkipped}},
		{name: "only pending", code: ExitHarness, reason: "no scenario ran",
			specs:   []types.SpecReport{spec("a", "x", types.SpecStatePending, false, 0)},
			outcome: map[string]string{"a": OutcomePending}},
		{name: "suite node failed", code: ExitHarness, reason: "suite node",
			specs: append(pass("a"), types.SpecReport{LeafNodeType: types.NodeTypeReportAfterSuite, State: types.SpecStateFailed,
				Failure: types.Failure{Message: "render failed"}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := types.Report{SpecReports: c.specs, SuiteSucceeded: c.code == ExitPass}
			st := Classify(r)
			if st.ExitCode != c.code {
				t.Fatalf("exit code %d, want %d (%+v)", st.ExitCode, c.code, st)
			}
			if !strings.Contains(st.Reason, c.reason) {
				t.Errorf("reason %q lacks %q", st.Reason, c.reason)
			}
			for scn, want := range c.outcome {
				found := false
				for _, s := range st.Scenarios {
					if s.Name == scn {
						found = true
						if s.Outcome != want {
							t.Errorf("scenario %s: outcome %s, want %s", scn, s.Outcome, want)
						}
					}
				}
				if !found {
					t.Errorf("scenario %s missing", scn)
				}
			}
		})
	}
}

// Ginkgo's own verdict must never be overridden into a pass.
func TestClassifyNeverPassesAFailedSuite(t *testing.T) {
	r := types.Report{SuiteSucceeded: false, SpecialSuiteFailureReasons: []string{"Interrupted by User"},
		SpecReports: []types.SpecReport{spec("a", "x", types.SpecStatePassed, false, 0)}}
	if st := Classify(r); st.ExitCode != ExitHarness {
		t.Fatalf("exit %d", st.ExitCode)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadStatus(dir); err == nil {
		t.Fatal("missing status read without error")
	}
	st := Status{RunID: "r", Seed: 3, ExitCode: ExitGate, Outcome: OutcomeGate, Scenarios: []ScenarioStatus{{Name: "a", Outcome: OutcomeGate}}}
	if err := WriteStatus(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStatus(dir)
	if err != nil || got.ExitCode != ExitGate || got.Scenarios[0].Name != "a" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// status.json is one JSON object with an exit code a run ends with;
// anything after it, a number JSON cannot hold or an unknown exit code is
// an error, which callers take for a harness failure.
func TestReadStatusRefuses(t *testing.T) {
	good := `{"run_id": "r", "exit_code": 1}`
	for _, tc := range []struct{ name, body, want string }{
		{"good", good + "\n", ""},
		{"good, spaces after", good + " \n\t\n", ""},
		{"trailing }", good + "}\n", "invalid character '}' after top-level value"},
		{"trailing ]", good + "]", "invalid character ']' after top-level value"},
		{"a second object", good + "\n" + good + "\n", "invalid character '{' after top-level value"},
		{"trailing text", good + " garbage", "invalid character 'g' after top-level value"},
		{"NaN", `{"run_id": "r", "exit_code": NaN}`, "invalid character 'N'"},
		{"Infinity", `{"run_id": "r", "seed": Infinity}`, "invalid character 'I'"},
		{"past int64", `{"run_id": "r", "seed": 1e999}`, "cannot unmarshal number 1e999"},
		{"a fraction for an exit code", `{"exit_code": 1.5}`, "cannot unmarshal number 1.5"},
		{"an exit code no run ends with", `{"exit_code": 7}`, "exit_code 7 is none a run ends with"},
		{"not an object", `[1]`, "cannot unmarshal array"},
		{"empty", ``, "unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StatusFile), []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			st, err := ReadStatus(dir)
			if tc.want == "" {
				if err != nil || st.ExitCode != 1 {
					t.Fatalf("%+v, %v", st, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestTallyReadsAGrowingHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(path, history.NewClock(), history.Header{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	tally := NewTally(path)
	send := func(id string, o history.Outcome) {
		if err := w.Op(history.Record{Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, MsgID: id, Outcome: o}); err != nil {
			t.Fatal(err)
		}
	}
	send("r.1", history.OK)
	send("r.2", history.Fail)
	_ = w.Op(history.Record{Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, MsgID: "r.2", Outcome: history.Fail})
	now := time.Now()
	_ = w.Event(history.KindFaultInject, "region-loss", "a", now, now, nil)
	_ = w.Phase(history.PhaseLoad, 0, "")
	_ = w.Flush()
	if err := tally.Update(); err != nil {
		t.Fatal(err)
	}
	if tally.Accepted != 1 || tally.Failed != 1 || tally.Errors != 1 || tally.FaultList() != "region-loss:a" || tally.Phase != "load" {
		t.Fatalf("tally %+v", tally)
	}
	send("r.3", history.Indeterminate)
	_ = w.Seen(history.Record{Mailbox: "u/INBOX", UID: 1, MsgID: "r.1"})
	_ = w.Seen(history.Record{Mailbox: "u/INBOX", UID: 1, MsgID: "r.1"})
	_ = w.Event(history.KindFaultHeal, "region-loss", "a", now, now, errors.New("x"))
	_ = w.Close()
	if err := tally.Update(); err != nil {
		t.Fatal(err)
	}
	if tally.Indeterminate != 1 || tally.Seen != 1 || tally.FaultList() != "-" {
		t.Fatalf("tally %+v", tally)
	}
	line := FormatLine("region-loss", "load", 90*time.Second, 3*time.Minute, 9.5, tally)
	for _, w := range []string{"[region-loss]", "1m30s/3m0s", "phase=load", "9.5 msg/s", "accepted=1", "seen=1", "errors=1"} {
		if !strings.Contains(line, w) {
			t.Errorf("line %q lacks %q", line, w)
		}
	}
}
