package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The published schema and the Go types must describe the same records:
// every line this package writes validates against the schema.
func TestWrittenRecordsMatchTheSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("history.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(writeSample(t)))
	for n := 1; sc.Scan(); n++ {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(sc.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("line %d: %v", n, err)
		}
	}
	// And the schema can fail: a record with an unknown outcome is rejected.
	var bad any
	_ = json.Unmarshal([]byte(`{"type":"op","client":"c","kind":"smtp.send","scope":"op","outcome":"maybe","start":0}`), &bad)
	if err := sch.Validate(bad); err == nil {
		t.Error("schema accepted outcome \"maybe\"")
	}
}
