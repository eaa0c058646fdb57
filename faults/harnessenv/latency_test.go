package harnessenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/faults"
)

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// TestFaultLatency injects and heals each kind several times on the
// reference stack and prints the median time from call to observed effect.
// Targets: network kinds under 100 ms; node kinds under 2 s for inject
// (heal includes the node's own start-up and readiness).
//
// It is a measurement, not a gate, and takes minutes: it runs only when asked
// for by name (-run TestFaultLatency, as make bench-faults does) or with
// MAILCHAOS_BENCH_FAULTS=1.
func TestFaultLatency(t *testing.T) {
	if f := flag.Lookup("test.run"); !(f != nil && strings.Contains(f.Value.String(), "TestFaultLatency")) && os.Getenv("MAILCHAOS_BENCH_FAULTS") != "1" {
		t.Skip("run with -run TestFaultLatency (make bench-faults)")
	}
	_, fe := stack(t)
	kinds := []struct {
		spec string
		reps int
	}{
		{"partition:client-smtp", 5},
		{"partition-oneway:client-smtp:downstream", 5},
		{"latency:client-smtp:100ms:jitter=20ms", 5},
		{"bandwidth:client-smtp:rate=8", 5},
		{"reset-peer:client-smtp", 5},
		{"slicer:client-smtp", 5},
		{"timeout:client-smtp", 5},
		{"limit-data:client-smtp:bytes=10", 5},
		{"slow-close:client-smtp", 5},
		{"smtp-cut:client-smtp:after", 5},
		{"partition:wan-a-b", 5},
		{"kill:mta-b", 3},
		{"stop:mta-b", 3},
		{"restart:mta-b", 3},
		{"pause:mta-b", 3},
		{"kill-process:mta-b:master", 3},
		{"disconnect:mta-b", 3},
		{"disconnect-region:b", 3},
		{"region-loss:b", 2},
	}
	var lines []string
	for _, k := range kinds {
		spec, err := faults.ParseSpec(k.spec)
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		for i := 0; i < k.reps; i++ {
			f, err := spec.Build(fe)
			if err != nil {
				t.Fatal(err)
			}
			tl := &faults.Timeline{Events: rec, Steps: []faults.Step{{At: 0, For: 200 * time.Millisecond, Fault: f, Spec: k.spec}}, HealTimeout: 2 * time.Minute}
			if err := tl.Run(context.Background()); err != nil {
				t.Errorf("%s: %v", k.spec, err)
			}
		}
		name := spec.Kind.Name
		line := fmt.Sprintf("fault_latency kind=%-17s class=%-9s n=%d inject_median=%v heal_median=%v spec=%s",
			name, spec.Kind.Class, k.reps, median(rec.inject[name]).Round(time.Millisecond), median(rec.heal[name]).Round(time.Millisecond), k.spec)
		fmt.Println(line)
		lines = append(lines, line)
	}
	for _, l := range lines {
		t.Log(l)
	}
}
