package check

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var updateRejudge = flag.Bool("update-rejudge", false, "rewrite testdata/rejudge.golden.jsonl.gz with the verdicts of this checker")

// rejudgeGolden holds the verdicts the checker gave the rejudge corpus
// when it was written: a refactoring of the checker must give every one
// of them again, byte for byte.
const rejudgeGolden = "testdata/rejudge.golden.jsonl.gz"

// judged is one history of the rejudge corpus with what the checker said.
type judged struct {
	Name    string          `json:"name"`
	Err     string          `json:"err,omitempty"`
	Verdict json.RawMessage `json:"verdict"`
}

// rejudgeCase is one history of the corpus and the policy to judge it by.
type rejudgeCase struct {
	name   string
	data   []byte
	policy Policy
}

// strictPolicy and loosePolicy are the two policies the generated cases
// are judged under: the default, and every switch turned with small
// evidence and window bounds, so that the bounds are exercised too.
var (
	strictPolicy = Policy{Thresholds: []string{"lost == 0", "accepted > 0", "delivery_latency_p99_s < 30"}}
	loosePolicy  = Policy{RejectRecoveredDuplicates: true, AllowLate: true, AllowClientDowntime: true,
		Thresholds: []string{"client_visible_downtime_max_s < 5", "replica_missing == 0", "uid_order == 0"}, MaxEvidence: 3, MaxWindows: 2}
)

// rejudgeCorpus is every testdata history under its own policy, the real
// histories whole and cut at every phase event, and seeded mutants of the
// real and generated histories (lines dropped, doubled, swapped, or with
// an outcome, UID, UIDVALIDITY, body hash or flag changed), each under
// both policies.
func rejudgeCorpus(t *testing.T) []rejudgeCase {
	var out []rejudgeCase
	files, _ := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var w want
		if b, err := os.ReadFile(strings.TrimSuffix(path, ".jsonl") + ".want.json"); err == nil {
			if err := json.Unmarshal(b, &w); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, rejudgeCase{"testdata/" + filepath.Base(path), data, w.Policy})
	}
	var gen bytes.Buffer
	if err := genHistory(&gen, 300); err != nil {
		t.Fatal(err)
	}
	bases := map[string][]string{"gen-300": strings.SplitAfter(strings.TrimSuffix(gen.String(), "\n"), "\n")}
	for _, name := range []string{"steady-state", "killed-in-converge"} {
		bases[name] = realHistory(t, name)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range bases {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		lines := bases[name]
		out = append(out, bothPolicies(name, lines)...)
		for i, l := range lines {
			if strings.Contains(l, `"kind":"phase"`) {
				out = append(out, bothPolicies(fmt.Sprintf("%s/cut-%d", name, i), lines[:i])...)
			}
		}
		for seed := range uint64(60) {
			r := rand.New(rand.NewPCG(seed, 16))
			out = append(out, bothPolicies(fmt.Sprintf("%s/mutant-%d", name, seed), mutate(r, lines))...)
		}
	}
	return out
}

func bothPolicies(name string, lines []string) []rejudgeCase {
	data := []byte(strings.Join(lines, ""))
	return []rejudgeCase{{name + "/strict", data, strictPolicy}, {name + "/loose", data, loosePolicy}}
}

var (
	uidRE     = regexp.MustCompile(`"uid":\d+`)
	uidvRE    = regexp.MustCompile(`"uidvalidity":\d+`)
	hashRE    = regexp.MustCompile(`"body_sha256":"[0-9a-f]`)
	flagsRE   = regexp.MustCompile(`"flags":\[[^\]]*\]`)
	outcomeRE = regexp.MustCompile(`"outcome":"(ok|fail|indeterminate)"`)
)

// mutate returns a copy of lines (the header kept first) with one to six
// random changes of the kinds that make checks fail.
func mutate(r *rand.Rand, lines []string) []string {
	out := slices.Clone(lines)
	outcomes := []string{"ok", "fail", "indeterminate"}
	for range 1 + r.IntN(6) {
		if len(out) < 3 {
			break
		}
		i := 1 + r.IntN(len(out)-1)
		switch r.IntN(8) {
		case 0:
			out = slices.Delete(out, i, i+1)
		case 1:
			out = slices.Insert(out, i, out[i])
		case 2:
			if i+1 < len(out) && strings.HasSuffix(out[i+1], "\n") {
				out[i], out[i+1] = out[i+1], out[i]
			}
		case 3:
			out[i] = outcomeRE.ReplaceAllString(out[i], `"outcome":"`+outcomes[r.IntN(3)]+`"`)
		case 4:
			out[i] = uidRE.ReplaceAllString(out[i], `"uid":`+strconv.Itoa(1+r.IntN(40)))
		case 5:
			out[i] = uidvRE.ReplaceAllString(out[i], `"uidvalidity":`+strconv.Itoa(1+r.IntN(3)))
		case 6:
			out[i] = hashRE.ReplaceAllString(out[i], `"body_sha256":"f`)
		case 7:
			out[i] = flagsRE.ReplaceAllString(out[i], `"flags":[]`)
		}
	}
	return out
}

// judgeAll judges every case of the corpus as this checker does.
func judgeAll(t *testing.T, cases []rejudgeCase) []judged {
	out := make([]judged, 0, len(cases))
	for _, c := range cases {
		v, err := RunReader(context.Background(), c.name, bytes.NewReader(c.data), c.policy)
		j := judged{Name: c.name}
		if err != nil {
			j.Err = err.Error()
		}
		b, mErr := json.Marshal(v)
		if mErr != nil {
			t.Fatalf("%s: marshal verdict: %v", c.name, mErr)
		}
		j.Verdict = b
		out = append(out, j)
	}
	return out
}

// TestRejudgeGivesTheGoldenVerdicts judges the rejudge corpus and compares
// every verdict (and error) with the one stored when the corpus was
// written: the checker's answers do not move when its code does.
func TestRejudgeGivesTheGoldenVerdicts(t *testing.T) {
	got := judgeAll(t, rejudgeCorpus(t))
	if *updateRejudge {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		enc := json.NewEncoder(zw)
		for _, j := range got {
			if err := enc.Encode(j); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rejudgeGolden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readGolden(t)
	if len(got) != len(want) {
		t.Fatalf("%d verdicts, %d golden ones", len(got), len(want))
	}
	failures, differ := 0, 0
	for i := range got {
		g, w := got[i], want[i]
		var head struct{ Status Status }
		if json.Unmarshal(g.Verdict, &head) == nil && head.Status != Success {
			failures++
		}
		if g.Name != w.Name || g.Err != w.Err || !bytes.Equal(g.Verdict, w.Verdict) {
			differ++
			if differ <= 3 {
				t.Errorf("%s: verdict differs from the golden one\n got %s %s\nwant %s %s", g.Name, g.Err, g.Verdict, w.Err, w.Verdict)
			}
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d verdicts differ", differ, len(got))
	}
	t.Logf("%d verdicts identical to the golden ones (%d not a success)", len(got), failures)
}

func readGolden(t *testing.T) []judged {
	f, err := os.Open(rejudgeGolden)
	if err != nil {
		t.Fatalf("open golden verdicts (write them with -update-rejudge): %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []judged
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var j judged
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
