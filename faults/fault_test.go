package faults

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec    string
		want    string // Spec.String(), or "" when an error is expected
		wantErr string
	}{
		{spec: "region-loss:a", want: "region-loss:a:mode=kill"},
		{spec: "latency:wan-a-b:200ms", want: "latency:wan-a-b:latency=200ms:jitter=0s:stream=both:toxicity=1"},
		{spec: "latency:wan-a-b:200ms:50ms:downstream:0.5", want: "latency:wan-a-b:latency=200ms:jitter=50ms:stream=downstream:toxicity=0.5"},
		{spec: "latency:wan-a-b:jitter=10ms", want: "latency:wan-a-b:latency=200ms:jitter=10ms:stream=both:toxicity=1"},
		{spec: "kill-process:store-a:imap", want: "kill-process:store-a:process=imap:grace=3s"},
		{spec: "upgrade:mta:drain_timeout=5s", want: "upgrade:mta:drain_timeout=5s:drain=true:rollback=false"},
		{spec: "smtp-cut:client-smtp:before", want: "smtp-cut:client-smtp:mode=before:toxicity=1"},
		{spec: "partition:*", want: "partition:*"},
		{spec: "lag:wan-a-b", wantErr: `unknown kind "lag"; known kinds: `},
		{spec: "latency", wantErr: "missing target (a link name); usage: latency:<link>[:latency=200ms]"},
		{spec: "latency:wan-a-b:fast", wantErr: `latency: "fast" is not a duration`},
		{spec: "latency:wan-a-b:-5ms", wantErr: "below the minimum"},
		{spec: "latency:wan-a-b:toxicity=1.5", wantErr: "toxicity: 1.5 is above the maximum 1"},
		{spec: "latency:wan-a-b:toxicity=NaN", wantErr: `toxicity: "NaN" is not a finite number: write a decimal, e.g. 0.5`},
		{spec: "latency:wan-a-b:toxicity=nan", wantErr: `toxicity: "nan" is not a finite number`},
		{spec: "latency:wan-a-b:toxicity=-Inf", wantErr: `toxicity: "-Inf" is not a finite number`},
		{spec: "smtp-cut:client-smtp:after:+infinity", wantErr: `toxicity: "+infinity" is not a finite number`},
		{spec: "latency:wan-a-b:toxicity=1e999", wantErr: `toxicity: "1e999" is not a number`},
		{spec: "upgrade:mta:drain_timeout=2562047h", wantErr: "drain_timeout: 2562047h is longer than 24h0m0s"},
		{spec: "latency:wan-a-b:stream=sideways", wantErr: `stream: "sideways" is not one of both, upstream, downstream`},
		{spec: "latency:wan-a-b:color=red", wantErr: `unknown parameter "color"`},
		{spec: "latency:wan-a-b:latency=1s:2s", wantErr: `positional value "2s" after a named parameter`},
		{spec: "latency:wan-a-b:1s:latency=2s", wantErr: "parameter latency given twice"},
		{spec: "partition:wan-a-b:1s", wantErr: `too many parameters ("1s")`},
		{spec: "kill-process:store-a", wantErr: "missing parameter process"},
		// Every problem is reported at once.
		{spec: "latency:l:x:y:stream=no", wantErr: `latency: "x" is not a duration (e.g. 200ms, 2s); jitter: "y" is not a duration (e.g. 200ms, 2s); stream: "no" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseSpec(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSpec(%q) error = %v, want it to contain %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.spec, err)
			}
			if got := s.String(); got != tt.want {
				t.Fatalf("ParseSpec(%q) = %q, want %q", tt.spec, got, tt.want)
			}
			// The canonical form parses to itself.
			again, err := ParseSpec(s.String())
			if err != nil || again.String() != s.String() {
				t.Fatalf("round trip of %q: %v, %v", s.String(), again, err)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	env := newFakeEnv()
	tests := []struct{ spec, wantErr string }{
		{"latency:wan-a-c", `link "wan-a-c": no such link; links: client-smtp, edge-mta-a, edge-mta-b, wan-a-b`},
		{"kill:store-c", `node "store-c": no such node; nodes: edge, mta-a, mta-b, standby, store-a, store-b`},
		{"region-loss:c", `region "c": no such region; regions: a, b`},
		{"upgrade:stor", `no node has role "stor"; roles: edge, mta, standby, store`},
		{"failover:mta:standby=nope", `node "nope"`},
		{"partition:*", `target "*" must be chosen first`},
	}
	for _, tt := range tests {
		_, err := Parse(env, tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%q) error = %v, want %q", tt.spec, err, tt.wantErr)
		}
	}
	env.noEdge = true
	if _, err := Parse(env, "upgrade:mta"); err == nil || !strings.Contains(err.Error(), "needs the edge") {
		t.Errorf("upgrade without edge: %v", err)
	}
	if _, err := Parse(env, "upgrade:mta:drain=false"); err != nil {
		t.Errorf("upgrade without drain needs no edge: %v", err)
	}
}

// TestKinds checks the calls each kind makes on inject and on heal.
func TestKinds(t *testing.T) {
	tests := []struct {
		spec         string
		inject, heal []string
	}{
		{"partition:wan-a-b", []string{"set-enabled wan-a-b false"}, []string{"set-enabled wan-a-b true"}},
		{"latency:wan-a-b:200ms:stream=downstream", []string{"add-toxic wan-a-b latency downstream 1"}, []string{"remove-toxic wan-a-b"}},
		{"latency:wan-a-b:200ms", []string{"add-toxic wan-a-b latency upstream 1", "add-toxic wan-a-b latency downstream 1"},
			[]string{"remove-toxic wan-a-b", "remove-toxic wan-a-b"}},
		{"bandwidth:edge-mta-a:rate=10:stream=upstream:toxicity=0.5", []string{"add-toxic edge-mta-a bandwidth upstream 0.5"}, []string{"remove-toxic edge-mta-a"}},
		{"reset-peer:client-smtp:stream=upstream", []string{"add-toxic client-smtp reset_peer upstream 1"}, []string{"remove-toxic client-smtp"}},
		{"slicer:client-smtp:stream=downstream", []string{"add-toxic client-smtp slicer downstream 1"}, []string{"remove-toxic client-smtp"}},
		{"timeout:wan-a-b:stream=upstream", []string{"add-toxic wan-a-b timeout upstream 1"}, []string{"remove-toxic wan-a-b"}},
		{"limit-data:wan-a-b:bytes=10:stream=upstream", []string{"add-toxic wan-a-b limit_data upstream 1"}, []string{"remove-toxic wan-a-b"}},
		{"slow-close:wan-a-b:stream=upstream", []string{"add-toxic wan-a-b slow_close upstream 1"}, []string{"remove-toxic wan-a-b"}},
		{"partition-oneway:wan-a-b:downstream", []string{"add-toxic wan-a-b timeout downstream 1"}, []string{"remove-toxic wan-a-b"}},
		{"smtp-cut:client-smtp:after:toxicity=0.3", []string{"add-toxic client-smtp smtp_data_cut downstream 0.3"}, []string{"remove-toxic client-smtp"}},
		{"smtp-cut:client-smtp:before", []string{"add-toxic client-smtp smtp_data_cut upstream 1"}, []string{"remove-toxic client-smtp"}},
		{"kill:mta-a", []string{"kill mta-a"}, []string{"start mta-a"}},
		{"stop:mta-a", []string{"stop mta-a"}, []string{"start mta-a"}},
		{"restart:mta-a", []string{"restart mta-a"}, nil},
		{"pause:store-b", []string{"pause store-b"}, []string{"unpause store-b"}},
		{"kill-process:store-b:imap:grace=50ms", []string{"exec store-b pkill -KILL -x imap"}, []string{"restart store-b"}},
		{"disconnect:store-a", []string{"disconnect store-a"}, []string{"connect store-a"}},
		{"disconnect-region:b", []string{"region-disconnect b"}, []string{"region-connect b"}},
		// Region faults act on links and nodes concurrently: their calls are
		// compared sorted here, their order in TestRegionFaultOrder.
		{"region-loss:a", []string{"disconnect mta-a", "disconnect store-a", "kill mta-a", "kill store-a",
			"set-enabled edge-mta-a false", "set-enabled wan-a-b false"},
			[]string{"region-connect a", "region-start a", "set-enabled edge-mta-a true", "set-enabled wan-a-b true"}},
		{"region-loss:b:stop", []string{"disconnect mta-b", "disconnect store-b", "set-enabled edge-mta-b false", "set-enabled wan-a-b false",
			"stop mta-b", "stop store-b"},
			[]string{"region-connect b", "region-start b", "set-enabled edge-mta-b true", "set-enabled wan-a-b true"}},
		{"region-destroy:a", []string{"disconnect mta-a", "disconnect store-a", "drop-volumes mta-a", "drop-volumes store-a",
			"kill mta-a", "kill store-a", "set-enabled edge-mta-a false", "set-enabled wan-a-b false"},
			[]string{"region-connect a", "region-start a", "set-enabled edge-mta-a true", "set-enabled wan-a-b true"}},
		{"failover:mta", []string{"exec standby mailchaos-hold", "enable standby", "drain mta-a", "drain mta-b"},
			[]string{"enable mta-a", "enable mta-b", "drain standby", "exec standby mailchaos-flush"}},
		{"failover:mta:hold=none:flush=release", []string{"enable standby", "drain mta-a", "drain mta-b"},
			[]string{"enable mta-a", "enable mta-b", "drain standby", "exec standby release"}},
		{"upgrade:store:drain_timeout=1s", []string{
			"drain store-a", "stop store-a", "replace mailchaos/store:v2 store-a", "enable store-a",
			"drain store-b", "stop store-b", "replace mailchaos/store:v2 store-b", "enable store-b"},
			[]string{"enable store-a", "enable store-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			env := newFakeEnv()
			// Links are listed in map order; sort the fault's links so
			// the expected order is stable.
			f, err := Parse(env, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			_, concurrent := f.(*RegionFault)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := f.Inject(ctx); err != nil {
				t.Fatalf("inject: %v", err)
			}
			if o, ok := f.(InjectObserver); ok {
				if err := o.AwaitInjected(ctx); err != nil {
					t.Fatalf("await injected: %v", err)
				}
			}
			got := env.Calls()
			if concurrent {
				sort.Strings(got)
			}
			if strings.Join(got, "|") != strings.Join(tt.inject, "|") {
				t.Errorf("inject calls:\n got %q\nwant %q", got, tt.inject)
			}
			env.reset()
			if err := f.Heal(ctx); err != nil {
				t.Fatalf("heal: %v", err)
			}
			if o, ok := f.(HealObserver); ok {
				if err := o.AwaitHealed(ctx); err != nil {
					t.Fatalf("await healed: %v", err)
				}
			}
			got = env.Calls()
			if concurrent {
				// Connect and start stay in that order; links come after.
				sort.Strings(got[2:])
			}
			if strings.Join(got, "|") != strings.Join(tt.heal, "|") {
				t.Errorf("heal calls:\n got %q\nwant %q", got, tt.heal)
			}
			for _, l := range env.links {
				if !l.clean() {
					t.Errorf("link %s not clean after heal", l.name)
				}
			}
			for _, n := range env.nodes {
				if err := n.WaitReady(ctx); err != nil {
					t.Errorf("after heal: %v", err)
				}
			}
			// A second heal is harmless.
			if err := f.Heal(ctx); err != nil {
				t.Errorf("second heal: %v", err)
			}
		})
	}
}

// TestRegionFaultOrder checks what the concurrency of a region fault keeps
// in order: every link is cut before any node is touched, and each node is
// downed, then disconnected, then (destroy) has its volumes dropped.
func TestRegionFaultOrder(t *testing.T) {
	env := newFakeEnv()
	f, err := Parse(env, "region-destroy:a")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := env.Calls()
	at := map[string]int{}
	for i, c := range calls {
		at[c] = i
	}
	for _, l := range []string{"edge-mta-a", "wan-a-b"} {
		for _, n := range []string{"mta-a", "store-a"} {
			if at["set-enabled "+l+" false"] > at["kill "+n] {
				t.Errorf("node %s killed before link %s was cut: %q", n, l, calls)
			}
		}
	}
	for _, n := range []string{"mta-a", "store-a"} {
		if !(at["kill "+n] < at["disconnect "+n] && at["disconnect "+n] < at["drop-volumes "+n]) {
			t.Errorf("%s: want kill, disconnect, drop-volumes in that order: %q", n, calls)
		}
		if fn := env.nodes[n]; !fn.dropped || fn.running || !fn.cut {
			t.Errorf("%s after inject: dropped=%v running=%v cut=%v", n, fn.dropped, fn.running, fn.cut)
		}
	}
	if env.nodes["mta-b"].dropped || env.nodes["store-b"].dropped {
		t.Error("region-destroy:a dropped region b's volumes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.(HealObserver).AwaitHealed(ctx); err != nil {
		t.Fatalf("region a not back after heal: %v", err)
	}
}

// TestRegionFaultReportsEveryFailure: one node failing does not stop the
// others, and each failure names its node.
func TestRegionFaultReportsEveryFailure(t *testing.T) {
	env := newFakeEnv()
	env.nodes["mta-a"].failDrop = true
	env.nodes["store-a"].failDrop = true
	f, err := Parse(env, "region-destroy:a")
	if err != nil {
		t.Fatal(err)
	}
	err = f.Inject(context.Background())
	for _, want := range []string{"drop volumes of mta-a: ", "drop volumes of store-a: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("inject error %v does not name %q", err, want)
		}
	}
}

func TestKillProcessNoMatch(t *testing.T) {
	env := newFakeEnv()
	env.nodes["store-a"].noProc = true
	f, err := Parse(env, "kill-process:store-a:nosuch")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Inject(context.Background()); err == nil || !strings.Contains(err.Error(), "no process nosuch in store-a") {
		t.Fatalf("inject = %v, want a no-such-process error", err)
	}
}

// Killing a container's main process takes the container down and the
// exec'd pkill with it (exit 137): the kill worked, and the fault says so;
// the heal brings the node back.
func TestKillProcessOfTheMainProcess(t *testing.T) {
	env := newFakeEnv()
	env.nodes["store-a"].pid1 = true
	f, err := Parse(env, "kill-process:store-a:dovecot:grace=50ms")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Inject(context.Background()); err != nil {
		t.Fatalf("inject = %v, want success: the process is gone", err)
	}
	if err := f.Heal(context.Background()); err != nil {
		t.Fatalf("heal = %v", err)
	}
	if !env.nodes["store-a"].running {
		t.Error("the node was not brought back")
	}
}

// A pkill that fails while the process still runs is an error.
func TestKillProcessThatSurvives(t *testing.T) {
	env := newFakeEnv()
	env.nodes["store-a"].execCode = 2 // pkill fails; the process stays
	f, err := Parse(env, "kill-process:store-a:dovecot")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Inject(context.Background()); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("inject = %v, want a still-running error", err)
	}
}

func TestRegionDestroyNeedsDropVolumes(t *testing.T) {
	env := &noDropEnv{newFakeEnv()}
	_, err := Parse(env, "region-destroy:a")
	if err == nil || !strings.Contains(err.Error(), "DropVolumes not supported by this environment") {
		t.Fatalf("err = %v", err)
	}
}

// noDropEnv hides the DropVolumes capability of its regions' nodes.
type noDropEnv struct{ *fakeEnv }

type noDropRegion struct{ Region }

type noDropNode struct{ Node }

func (e *noDropEnv) Region(name string) (Region, error) {
	r, err := e.fakeEnv.Region(name)
	if err != nil {
		return nil, err
	}
	return noDropRegion{r}, nil
}

func (r noDropRegion) Nodes() []Node {
	var out []Node
	for _, n := range r.Region.Nodes() {
		out = append(out, noDropNode{n})
	}
	return out
}

func TestRollingUpgradeOrderAndBoundedDrain(t *testing.T) {
	env := newFakeEnv()
	// mta-a drains after three polls; mta-b never does: the wait is bounded.
	env.edge.sessions["mta-a"] = []int{3, 2, 0}
	env.edge.sessions["mta-b"] = []int{5}
	f, err := Parse(env, "upgrade:mta:drain_timeout=200ms:rollback=true")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("roll took %v; want the bounded drain wait of ~200ms", took)
	}
	want := []string{"drain mta-a", "stop mta-a", "replace mailchaos/mta:v2 mta-a", "enable mta-a",
		"drain mta-b", "stop mta-b", "replace mailchaos/mta:v2 mta-b", "enable mta-b"}
	if got := env.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upgrade calls:\n got %q\nwant %q", got, want)
	}
	env.reset()
	env.edge.sessions["mta-b"] = nil
	if err := f.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = []string{"drain mta-a", "stop mta-a", "replace mailchaos/mta:v1 mta-a", "enable mta-a",
		"drain mta-b", "stop mta-b", "replace mailchaos/mta:v1 mta-b", "enable mta-b"}
	if got := env.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rollback calls:\n got %q\nwant %q", got, want)
	}
	// A standalone rollback goes back to the declared image (BaseImage),
	// even when built after the upgrade.
	if env.nodes["mta-a"].image != "mailchaos/mta:v1" {
		t.Fatalf("heal did not roll back: %s", env.nodes["mta-a"].image)
	}
	env.nodes["mta-a"].image, env.nodes["mta-b"].image = "mailchaos/mta:v2", "mailchaos/mta:v2"
	rb, err := Parse(env, "rollback:mta:drain=false")
	if err != nil {
		t.Fatal(err)
	}
	env.reset()
	if err := rb.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = []string{"stop mta-a", "replace mailchaos/mta:v1 mta-a", "stop mta-b", "replace mailchaos/mta:v1 mta-b"}
	if got := env.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rollback calls:\n got %q\nwant %q", got, want)
	}
}

// TestRollingUpgradeWaitsUntilServing: where the edge can tell, the next
// node is drained only once the edge sends sessions to the replaced one
// (its health checks passed), so the tier always has a server.
func TestRollingUpgradeWaitsUntilServing(t *testing.T) {
	env := newFakeEnv()
	env.edge.serving = map[string][]bool{"mta-a": {false, false, true}}
	f, err := Parse(env, "upgrade:mta:drain_timeout=100ms")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"drain mta-a", "stop mta-a", "replace mailchaos/mta:v2 mta-a", "enable mta-a",
		"serving? mta-a", "serving? mta-a", "serving? mta-a",
		"drain mta-b", "stop mta-b", "replace mailchaos/mta:v2 mta-b", "enable mta-b", "serving? mta-b"}
	if got := env.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upgrade calls:\n got %q\nwant %q", got, want)
	}
	// An edge that never serves the node again fails the roll, bounded.
	env.reset()
	env.edge.serving = map[string][]bool{"mta-a": {false}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.Inject(ctx); err == nil || !strings.Contains(err.Error(), "edge serving mta-a") {
		t.Errorf("inject with an edge that never serves mta-a = %v", err)
	}
}

// TestRollingUpgradeWaitsUntilQuiesced: a drained node that can tell is
// stopped only once it holds no work in flight (an MTA's queue is empty),
// and a node that never quiesces is stopped anyway after the drain timeout.
func TestRollingUpgradeWaitsUntilQuiesced(t *testing.T) {
	env := newFakeEnv()
	env.nodes["mta-a"].quiesce = []bool{false, true}
	env.nodes["mta-b"].quiesce = []bool{false}
	f, err := Parse(env, "upgrade:mta:drain_timeout=300ms")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("roll took %v; want mta-b's bounded quiesce wait of ~300ms", took)
	}
	var got []string
	for _, c := range env.Calls() {
		if !strings.HasPrefix(c, "quiesced? mta-b") || !slices.Contains(got, c) {
			got = append(got, c)
		}
	}
	want := []string{"drain mta-a", "quiesced? mta-a", "quiesced? mta-a", "stop mta-a", "replace mailchaos/mta:v2 mta-a", "enable mta-a",
		"drain mta-b", "quiesced? mta-b", "stop mta-b", "replace mailchaos/mta:v2 mta-b", "enable mta-b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upgrade calls (repeats of mta-b's question folded):\n got %q\nwant %q", got, want)
	}
}

func TestRollingUpgradeAbortHealsTier(t *testing.T) {
	env := newFakeEnv()
	f, err := Parse(env, "upgrade:mta")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Inject(ctx); err == nil || !strings.Contains(err.Error(), "aborted before mta-a") {
		t.Fatalf("inject on a cancelled ctx = %v", err)
	}
	// Simulate a roll that died with mta-b stopped and drained.
	env.nodes["mta-b"].running = false
	env.reset()
	if err := f.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"enable mta-a", "start mta-b", "enable mta-b"}
	if got := env.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("heal calls:\n got %q\nwant %q", got, want)
	}
}

// TestFailoverHoldFails: a standby that cannot be made to hold gets no
// traffic: the edge is not touched, and the error carries the program's
// exit code.
func TestFailoverHoldFails(t *testing.T) {
	env := newFakeEnv()
	env.nodes["standby"].execCode = 3
	f, err := Parse(env, "failover:mta")
	if err != nil {
		t.Fatal(err)
	}
	err = f.Inject(context.Background())
	if err == nil || !strings.Contains(err.Error(), "mailchaos-hold exited 3") {
		t.Fatalf("inject = %v, want the hold program's failure", err)
	}
	if got := env.Calls(); len(got) != 1 || got[0] != "exec standby mailchaos-hold" {
		t.Errorf("calls after a failed hold: %q", got)
	}
}
