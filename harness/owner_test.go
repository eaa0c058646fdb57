package harness

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// goneOwner returns an owner on this host whose process has exited.
func goneOwner(t *testing.T) Owner {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	me := Self()
	return Owner{Host: me.Host, PID: cmd.Process.Pid, Start: me.Start + "-earlier"}
}

func TestOwnerLiveness(t *testing.T) {
	me := Self()
	if runtime.GOOS == "linux" && (me.Start == "" || !strings.Contains(me.Start, "/")) {
		t.Fatalf("start time of this process: %q, want <boot id>/<ticks> from /proc", me.Start)
	}
	pid1 := Owner{Host: me.Host, PID: 1, Start: processStart(1)}
	for _, c := range []struct {
		name  string
		owner Owner
		want  Liveness
	}{
		{"this process", me, OwnerAlive},
		{"a process that exited", goneOwner(t), OwnerGone},
		{"pid 1 with its own start time", pid1, OwnerAlive},
		{"pid 1 with another start time (a reused pid)", Owner{Host: me.Host, PID: 1, Start: "other-boot/1"}, OwnerGone},
		{"another host", Owner{Host: me.Host + "-elsewhere", PID: me.PID, Start: me.Start}, OwnerUnknown},
	} {
		if runtime.GOOS != "linux" && strings.Contains(c.name, "start time") {
			continue // no /proc: the owner is judged by its pid alone
		}
		if got, why := c.owner.liveness(); got != c.want {
			t.Errorf("%s: liveness %d (%s), want %d", c.name, got, why, c.want)
		}
	}
	if o, ok := ownerFrom(me.labels()); !ok || o != me {
		t.Errorf("owner labels round trip: %+v %v, want %+v", o, ok, me)
	}
	if _, ok := ownerFrom(map[string]string{LabelRun: "x"}); ok {
		t.Error("a resource without owner labels has an owner")
	}
	if l, _ := (RunInfo{ID: "old"}).Liveness(); l != OwnerUnknown {
		t.Errorf("a run without owner labels: liveness %d, want unknown", l)
	}
}

func TestRunMatches(t *testing.T) {
	for _, c := range []struct {
		r    RunInfo
		want bool
	}{
		{RunInfo{ID: "ab-1"}, true},
		{RunInfo{ID: "ab-1-steady-state", Group: "ab-1"}, true},
		{RunInfo{ID: "ab-1-steady-state"}, true}, // no group label: by its id
		{RunInfo{ID: "ab-1-2-steady-state", Group: "ab-1-2"}, false},
		{RunInfo{ID: "ab-10"}, false},
		{RunInfo{ID: "ab-2-steady-state", Group: "ab-2"}, false},
	} {
		if got := c.r.matches("ab-1"); got != c.want {
			t.Errorf("%+v matches ab-1 = %v, want %v", c.r, got, c.want)
		}
	}
}

// fakeRun makes a network and a volume labelled as run id of owner (no
// container, no image): what a run leaves when its process is killed.
func fakeRun(t *testing.T, cli *client.Client, id, group string, owner Owner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	labels := owner.labels()
	labels[LabelRun] = id
	if group != "" {
		labels[LabelGroup] = group
	}
	if _, err := cli.NetworkCreate(ctx, "mc-"+id+"-core", client.NetworkCreateOptions{Driver: "bridge", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "mc-" + id + "-data", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = removeRun(ctx, cli, id, nil)
	})
}

// A bare Clean removes a run whose owner is gone and keeps one whose owner
// runs (this process); --run limits it to a run and the stacks of its
// scenarios; --force removes a run in progress. Up refuses a run id that
// has resources, naming the fix, and removes nothing of it.
func TestCleanByOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("Docker test")
	}
	cli := needDocker(t)
	base := testRunID()
	gone, live := base+"-gone", base+"-live"
	fakeRun(t, cli, gone+"-steady-state", gone, goneOwner(t))
	fakeRun(t, cli, live+"-steady-state", live, Self())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	d, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env, err := Up(ctx, d, Options{RunID: live + "-steady-state", OutDir: t.TempDir()})
	if env != nil || !errors.Is(err, errRunInUse) || !strings.Contains(err.Error(), "--run-id") {
		t.Fatalf("Up on a run id in use: env %v, err %v; want a refusal naming --run-id", env, err)
	}
	if c, n, v := labelled(t, live+"-steady-state"); n != 1 || v != 1 || c != 0 {
		t.Fatalf("refused Up changed the run in use: %d containers, %d networks, %d volumes", c, n, v)
	}

	res, err := Clean(ctx, CleanOptions{Run: base + "-gone"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 || res.Runs[0].ID != gone+"-steady-state" || res.Removed != (Removed{Networks: 1, Volumes: 1}) {
		t.Errorf("clean --run %s: removed %+v (%s)", gone, res.Runs, res.Removed)
	}
	assertNothingLeft(t, gone+"-steady-state")

	// A bare clean, judged on this engine's listing without removing
	// anything (other engineers' runs may be on it): the gone run goes,
	// the live one stays.
	fakeRun(t, cli, gone+"-again", "", goneOwner(t))
	all, err := ListRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	remove, kept := selectRuns(all, CleanOptions{})
	if !slices.ContainsFunc(remove, func(r RunInfo) bool { return r.ID == gone+"-again" }) {
		t.Errorf("a bare clean would not remove the run whose owner is gone: %+v", remove)
	}
	if !slices.ContainsFunc(kept, func(k KeptRun) bool { return k.ID == live+"-steady-state" && strings.Contains(k.Why, "this process") }) {
		t.Errorf("a bare clean would not keep the live run: kept %+v", kept)
	}
	if slices.ContainsFunc(remove, func(r RunInfo) bool { return r.ID == live+"-steady-state" }) {
		t.Error("a bare clean would remove the live run")
	}
	remove, _ = selectRuns(all, CleanOptions{Force: true})
	if !slices.ContainsFunc(remove, func(r RunInfo) bool { return r.ID == live+"-steady-state" }) {
		t.Error("a bare clean --force would keep the live run")
	}

	res, err = Clean(ctx, CleanOptions{Run: live, Force: true})
	if err != nil || len(res.Runs) != 1 || len(res.Kept) != 0 {
		t.Fatalf("clean --run %s --force: removed %+v kept %+v err %v", live, res.Runs, res.Kept, err)
	}
	assertNothingLeft(t, live+"-steady-state")
	if pid, _ := strconv.Atoi(res.Runs[0].Owner.labels()[LabelOwnerPID]); pid != Self().PID {
		t.Errorf("owner read back: %+v", res.Runs[0].Owner)
	}
}
