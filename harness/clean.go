package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/moby/moby/client"
)

// RunInfo is one run found on the engine: what it has there and who made it.
type RunInfo struct {
	// ID is the run id (LabelRun): a scenario's stack is "<group>-<scenario>".
	ID string
	// Group is the id of the mailchaos run the stack belongs to ("" when
	// the resources predate LabelGroup or the caller gave none).
	Group string
	// Owner is the process that made it; HasOwner is false for resources
	// made before owner labels.
	Owner    Owner
	HasOwner bool
	// Containers, Networks and Volumes count its resources.
	Containers, Networks, Volumes int
}

// Liveness says whether the run's owner still runs, and why in words.
func (r RunInfo) Liveness() (Liveness, string) {
	if !r.HasOwner {
		return OwnerUnknown, "no owner labels (made by a mailchaos without them): cannot tell whether its process runs"
	}
	return r.Owner.liveness()
}

// Resources formats the counts: "5 containers, 3 networks, 4 volumes".
func (r RunInfo) Resources() string {
	return Removed{Containers: r.Containers, Networks: r.Networks, Volumes: r.Volumes}.String()
}

// matches says whether the run is run id or a stack of it: its group is
// id, or (for stacks without a group label) its id is "<id>-<scenario>".
func (r RunInfo) matches(id string) bool {
	return r.ID == id || r.Group == id || (r.Group == "" && strings.HasPrefix(r.ID, id+"-"))
}

// ListRuns lists every mailchaos run on the engine, sorted by id.
func ListRuns(ctx context.Context) ([]RunInfo, error) {
	cli, err := connectDocker(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return listRuns(ctx, cli, LabelRun)
}

// listRuns gathers the containers, networks and volumes whose labels match
// label (a Docker label filter: "key" or "key=value") into runs.
func listRuns(ctx context.Context, cli *client.Client, label string) ([]RunInfo, error) {
	f := make(client.Filters).Add("label", label)
	runs := map[string]*RunInfo{}
	add := func(labels map[string]string, count func(*RunInfo)) {
		id := labels[LabelRun]
		r, ok := runs[id]
		if !ok {
			r = &RunInfo{ID: id}
			runs[id] = r
		}
		if g := labels[LabelGroup]; g != "" {
			r.Group = g
		}
		if o, ok := ownerFrom(labels); ok && !r.HasOwner {
			r.Owner, r.HasOwner = o, true
		}
		count(r)
	}
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Items {
		add(c.Labels, func(r *RunInfo) { r.Containers++ })
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range ns.Items {
		add(n.Labels, func(r *RunInfo) { r.Networks++ })
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vs.Items {
		add(v.Labels, func(r *RunInfo) { r.Volumes++ })
	}
	out := make([]RunInfo, 0, len(runs))
	for _, r := range runs {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// CleanOptions choose what Clean removes.
type CleanOptions struct {
	// Run, when set, limits Clean to run Run and the stacks of its
	// scenarios (group Run, or ids "<Run>-*"); "" means every run.
	Run string
	// Force removes runs whose owner runs or cannot be checked too.
	// Without it only runs whose owner process is gone are removed.
	Force bool
}

// KeptRun is a run Clean left alone, and why.
type KeptRun struct {
	RunInfo
	Why string
}

// CleanResult says what Clean removed and what it kept.
type CleanResult struct {
	// Removed counts what was removed, over every run in Runs.
	Removed Removed
	// Runs are the runs removed.
	Runs []RunInfo
	// Kept are the runs selected but kept: their owner runs, or cannot be
	// checked from here (another host, no owner labels). Force removes them.
	Kept []KeptRun
}

// Clean removes what runs left behind: every container, network and
// volume of the runs opts selects whose owner process is gone (killed,
// crashed), or of every selected run with opts.Force. A run whose owner
// still runs, or that this host cannot check, is kept and listed, so a
// bare Clean never removes a run in progress. It does not save logs.
func Clean(ctx context.Context, opts CleanOptions) (CleanResult, error) {
	cli, err := connectDocker(ctx)
	if err != nil {
		return CleanResult{}, err
	}
	defer cli.Close()
	runs, err := listRuns(ctx, cli, LabelRun)
	if err != nil {
		return CleanResult{}, fmt.Errorf("clean: %w", err)
	}
	remove, kept := selectRuns(runs, opts)
	res := CleanResult{Kept: kept}
	var errs []error
	for _, r := range remove {
		removed, err := removeRun(ctx, cli, r.ID, nil)
		res.Removed.add(removed)
		if err != nil {
			errs = append(errs, fmt.Errorf("clean run %s: %w", r.ID, err))
			continue
		}
		res.Runs = append(res.Runs, r)
	}
	slog.Debug("clean", "run", opts.Run, "force", opts.Force, "removed", res.Removed.String(), "kept", len(res.Kept))
	return res, errors.Join(errs...)
}

// selectRuns splits the runs opts selects into those to remove (owner
// gone, or Force) and those to keep, with why.
func selectRuns(runs []RunInfo, opts CleanOptions) (remove []RunInfo, kept []KeptRun) {
	for _, r := range runs {
		if opts.Run != "" && !r.matches(opts.Run) {
			continue
		}
		if l, why := r.Liveness(); l != OwnerGone && !opts.Force {
			kept = append(kept, KeptRun{RunInfo: r, Why: why})
			continue
		}
		remove = append(remove, r)
	}
	return remove, kept
}

// StaleRuns lists the runs on the engine whose owner process is gone:
// what a killed run left behind, which a bare Clean removes.
func StaleRuns(ctx context.Context) ([]RunInfo, error) {
	runs, err := ListRuns(ctx)
	if err != nil {
		return nil, err
	}
	var stale []RunInfo
	for _, r := range runs {
		if l, _ := r.Liveness(); l == OwnerGone {
			stale = append(stale, r)
		}
	}
	return stale, nil
}

// errRunInUse is wrapped by Up's refusal of a run id that has resources.
var errRunInUse = errors.New("already in use on this engine")

// refuseRunInUse fails when the engine already holds resources labelled
// with runID: a second Up under the same id would share names with them,
// and its Teardown would remove the other run's containers.
func refuseRunInUse(ctx context.Context, cli *client.Client, runID string) error {
	runs, err := listRuns(ctx, cli, LabelRun+"="+runID)
	if err != nil {
		return fmt.Errorf("check run id %s: %w", runID, err)
	}
	if len(runs) == 0 {
		return nil
	}
	r := runs[0]
	l, why := r.Liveness()
	fix := "choose another run id (--run-id), or remove it with 'mailchaos clean --run " + runID + "'"
	if l == OwnerAlive {
		fix = "choose another run id (--run-id): that run is in progress"
	}
	return fmt.Errorf("run id %s is %w (%s; %s): %s", runID, errRunInUse, r.Resources(), why, fix)
}

// Remaining counts the containers, networks and volumes labelled with runID
// (with any mailchaos run when runID is "") that are still on the engine:
// what Clean would remove. After a Teardown it is zero; a holder of a
// stack polls it to notice that someone else removed the stack.
func Remaining(ctx context.Context, runID string) (Removed, error) {
	cli, err := connectDocker(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer cli.Close()
	label := LabelRun
	if runID != "" {
		label += "=" + runID
	}
	f := make(client.Filters).Add("label", label)
	var r Removed
	c, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return r, fmt.Errorf("list containers: %w", err)
	}
	n, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return r, fmt.Errorf("list networks: %w", err)
	}
	v, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return r, fmt.Errorf("list volumes: %w", err)
	}
	r.Containers, r.Networks, r.Volumes = len(c.Items), len(n.Items), len(v.Items)
	return r, nil
}
