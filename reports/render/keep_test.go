package render

import (
	"os"
	"testing"
)

// TestKeepSample writes a sample report to $MAILCHAOS_SAMPLE_OUT for a
// person to look at; it does nothing otherwise.
func TestKeepSample(t *testing.T) {
	out := os.Getenv("MAILCHAOS_SAMPLE_OUT")
	if out == "" {
		t.Skip("set MAILCHAOS_SAMPLE_OUT to write a sample report there")
	}
	run := sampleRun(t, out, fixture{scenario: "region-loss"}, fixture{scenario: "mta-crash", lose: 3})
	dir, err := Write(out, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("sample report in", dir)
}
