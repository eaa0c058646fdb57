package check

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mailchaos/mailchaos/history"
)

// Every verdict, passing or failing, validates against verdict.schema.json,
// and the schema can fail.
func TestVerdictMatchesTheSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("verdict.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var hists [][]history.Record
	for _, r := range regressions() {
		hists = append(hists, r.recs)
	}
	var buf strings.Builder
	_ = genHistory(&buf, 300)
	rd, _ := history.NewReader("g", strings.NewReader(buf.String()))
	full := []history.Record{rd.Header()}
	for r, err := rd.Next(); err == nil; r, err = rd.Next() {
		full = append(full, r)
	}
	hists = append(hists, full)
	// Replicas: all read and judged, and one failing beside one unread.
	hists = append(hists, joinRecs(sentAndRead(), replicaRead("store-a", "m1", "m2"), replicaRead("store-b", "m2", "m1")),
		joinRecs(sentAndRead(), replicaRead("store-a", "m1"), one(rread("store-b", 1))))
	for i, h := range hists {
		v := mustRun(t, h, Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(doc); err != nil {
			t.Errorf("verdict %d: %v", i, err)
		}
	}
	var bad any
	_ = json.Unmarshal([]byte(`{"version":1,"status":"maybe"}`), &bad)
	if err := sch.Validate(bad); err == nil {
		t.Error("schema accepted status \"maybe\"")
	}
}
