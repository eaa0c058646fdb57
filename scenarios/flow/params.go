package flow

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/mailchaos/mailchaos/fixtures/stacks"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/reports/evidence"
)

// MaxDuration is the longest load phase (--duration), and so the bound
// of every duration a scenario file gives.
const MaxDuration = 24 * time.Hour

// DefaultLabel is the label filter used when none is given: only the short
// smoke scenario runs, so `go test ./...` stays within CI's limit.
const DefaultLabel = "smoke"

// Params are the knobs of one mailchaos run, shared by every scenario of
// the run. Parse them with Bind and a flag.FlagSet, then Validate.
type Params struct {
	// Stack is the stack descriptor: a path (stack.yaml), or a stack
	// embedded in the binary such as "builtin:reference" (see StackPath).
	Stack string
	// Duration is how long each scenario's load-with-faults phase lasts; the
	// fault timelines are laid out as fractions of it.
	Duration time.Duration
	// Steady is how long the clean steady-state load before the faults lasts.
	Steady time.Duration
	// Converge bounds the convergence window after heal: the final read
	// starts when the stack reports nothing in flight, or at this deadline.
	Converge time.Duration
	// Rate is the SMTP arrival rate in messages per second (open model).
	Rate float64
	// Users is how many test users are provisioned and addressed.
	Users int
	// Seed drives the corpus, the schedule and the nemesis; 0 picks one.
	Seed int64
	// Out is the folder under which the run folder out/<run id>/ is made.
	Out string
	// RunID names the run; empty means a fresh YYYYMMDD-HHMMSS-<hex> id.
	RunID string
	// From and To are the image sets of an upgrade rehearsal (see ParseImageSet).
	From, To string
	// Label is the Ginkgo label filter selecting the scenarios to run.
	Label string
	// Scenarios, when set, names the scenarios to run (comma-separated);
	// the label filter still applies unless it was left at its default.
	Scenarios string
	// ScenarioFiles are a team's own scenario files or folders of them
	// (--scenario-file, repeatable), run beside the built-in ones.
	ScenarioFiles []string
	// Timeout bounds the whole run; past it the run is a harness failure.
	Timeout time.Duration
	// Progress is how progress is shown: auto (a live line on a terminal,
	// periodic log lines otherwise), line, log or off.
	Progress string
	// SignKey, when set, is the path of an ed25519 private key (any format
	// evidence.ParsePrivateKey reads; `mailchaos keygen` writes one): the
	// run folder's manifest is then signed (MANIFEST.sha256.sig).
	SignKey string
	// Parallel is how many scenarios run at once, each with its own stack
	// (mailchaos run --parallel); 0 or 1 runs them one after another.
	Parallel int
	// Part, when positive, makes this process part Part of a parallel
	// run: it runs its scenarios into the run folder and leaves the
	// run-level files (status.json, reports, manifest) to the process that
	// started it, writing its own outcome into PartFile instead.
	Part int
}

// Defaults returns the parameters of a run when no flag is given.
func Defaults() Params {
	return Params{
		Stack:    stacks.Reference,
		Duration: 60 * time.Second,
		Steady:   10 * time.Second,
		Converge: 90 * time.Second,
		Rate:     10,
		Users:    50,
		Out:      "out",
		Label:    DefaultLabel,
		Timeout:  90 * time.Minute,
		Progress: "auto",
	}
}

// Bind registers every parameter as a flag on fs, with p's current values
// as defaults. The names are the documented ones (--stack, --duration, ...).
func (p *Params) Bind(fs *flag.FlagSet) {
	fs.StringVar(&p.Stack, "stack", p.Stack, "stack descriptor: a stack.yaml path, or "+stacks.Reference+" (embedded in mailchaos; "+stacks.Defects+"/<variant> for the seeded defects)")
	fs.DurationVar(&p.Duration, "duration", p.Duration, "load-with-faults phase per scenario")
	fs.DurationVar(&p.Steady, "steady", p.Steady, "clean steady-state load before the faults")
	fs.DurationVar(&p.Converge, "converge", p.Converge, "bound of the convergence window after heal")
	fs.Float64Var(&p.Rate, "rate", p.Rate, "SMTP arrival rate, messages/s")
	fs.IntVar(&p.Users, "users", p.Users, "test users provisioned and addressed")
	fs.Int64Var(&p.Seed, "seed", p.Seed, "seed of corpus, schedule and nemesis (0: pick one, printed)")
	fs.StringVar(&p.Out, "out", p.Out, "folder of run folders")
	fs.StringVar(&p.RunID, "run-id", p.RunID, "run id (default: YYYYMMDD-HHMMSS-<hex>)")
	fs.StringVar(&p.From, "from", p.From, "rehearsal: images to start from (tag, or service=image,...)")
	fs.StringVar(&p.To, "to", p.To, "rehearsal: images to upgrade to (tag, or service=image,...)")
	fs.StringVar(&p.Label, "label", p.Label, "label filter selecting scenarios (smoke, nightly, upgrade, dr; e.g. 'nightly && !dr')")
	fs.StringVar(&p.Scenarios, "scenario", p.Scenarios, "run only these scenarios (comma-separated names)")
	fs.Func("scenario-file", "a scenario file, or a folder of *.yaml scenario files, to run beside the built-in ones (repeatable)", func(v string) error {
		p.ScenarioFiles = append(p.ScenarioFiles, v)
		return nil
	})
	fs.DurationVar(&p.Timeout, "timeout", p.Timeout, "bound of the whole run (past it: exit 2)")
	fs.StringVar(&p.Progress, "progress", p.Progress, "progress display: auto, line, log or off")
	fs.IntVar(&p.Parallel, "parallel", p.Parallel, "run this many scenarios at once, each with its own stack and process (1: one after another; 2 suits a 2-core machine, about one per core beyond)")
	fs.StringVar(&p.SignKey, "sign-key", p.SignKey, "ed25519 private key (PEM, OpenSSH, or a hex/base64 seed; mailchaos keygen writes one): sign the run's manifest and run id into MANIFEST.sha256.sig")
}

var runIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)

// Validate reports every problem with p at once, each naming its flag.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := CheckStack(p.Stack); err != nil {
		errs = append(errs, err)
	}
	if p.Duration < 10*time.Second || p.Duration > MaxDuration {
		bad("--duration %s: must be between 10s and %s", p.Duration, MaxDuration)
	}
	if p.Steady < 2*time.Second || p.Steady > time.Hour {
		bad("--steady %s: must be between 2s and 1h", p.Steady)
	}
	if p.Converge < 5*time.Second || p.Converge > time.Hour {
		bad("--converge %s: must be between 5s and 1h", p.Converge)
	}
	if !(p.Rate > 0 && p.Rate <= 5000) { // also rejects NaN
		bad("--rate %v: must be more than 0 and at most 5000 messages/s", p.Rate)
	}
	if p.Users < 1 || p.Users > harness.MaxUsers {
		bad("--users %d: must be between 1 and %d", p.Users, harness.MaxUsers)
	}
	if p.Seed < 0 {
		bad("--seed %d: must not be negative (0 picks one)", p.Seed)
	}
	if p.Out == "" {
		bad("--out: empty; give a folder for the run folders")
	}
	if p.RunID != "" && !runIDRe.MatchString(p.RunID) {
		bad("--run-id %q: use lower-case letters, digits and '-', at most 41 characters", p.RunID)
	}
	if (p.From == "") != (p.To == "") {
		bad("--from %q --to %q: a rehearsal needs both or neither", p.From, p.To)
	}
	for _, f := range []struct{ name, v string }{{"--from", p.From}, {"--to", p.To}} {
		if _, err := ParseImageSet(f.v); err != nil {
			bad("%s: %v", f.name, err)
		}
	}
	if _, err := types.ParseLabelFilter(p.Label); err != nil {
		bad("--label %q: %v", p.Label, err)
	}
	// A --timeout shorter than the run is allowed: the run then ends in
	// order at it (exit 2), which is how the abort test tries that path.
	if p.Timeout <= 0 {
		bad("--timeout %s: must be positive", p.Timeout)
	}
	switch p.Progress {
	case "auto", "line", "log", "off":
	default:
		bad("--progress %q: must be auto, line, log or off", p.Progress)
	}
	if p.Parallel < 0 || p.Parallel > MaxParallel {
		bad("--parallel %d: must be between 1 and %d (0 means 1)", p.Parallel, MaxParallel)
	}
	// A key that cannot sign is found now, not after an hour of load.
	if p.SignKey != "" {
		if _, err := evidence.LoadPrivateKey(p.SignKey); err != nil {
			bad("--sign-key: %v (give an ed25519 private key; mailchaos keygen --out DIR writes one)", err)
		}
	}
	return errors.Join(errs...)
}

// CheckStack reports what is wrong with a --stack value (a path, or a
// builtin: reference), naming the flag; nil when it names a file.
func CheckStack(ref string) error {
	if ref == "" {
		return fmt.Errorf("--stack: empty; give the path of a stack descriptor, or %s", stacks.Reference)
	}
	path, err := (Params{Stack: ref}).StackPath()
	if err != nil {
		return fmt.Errorf("--stack %v", err)
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("--stack %s: %v", ref, errors.Unwrap(err))
	case st.IsDir():
		return fmt.Errorf("--stack %s: is a folder; give the stack.yaml inside it", ref)
	}
	return nil
}

// StackPath returns the descriptor file Stack names: the path itself, or
// for a builtin stack its descriptor in the extracted embedded tree.
func (p Params) StackPath() (string, error) { return stacks.Resolve(p.Stack, stacks.Descriptor) }

// ScenarioNames returns the names of --scenario.
func (p Params) ScenarioNames() []string {
	var out []string
	for _, n := range strings.Split(p.Scenarios, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// RunDir is the run's folder: <Out>/<RunID>.
func (p Params) RunDir() string { return filepath.Join(p.Out, p.RunID) }

// MaxParallel bounds --parallel: each scenario at once is a whole stack.
const MaxParallel = 16

// PartFile is where part i of a parallel run writes its outcome for the
// parent to merge: <run dir>/parts/<i>.json (the parent removes the folder
// once it has written the run-level files).
func (p Params) PartFile(i int) string {
	return filepath.Join(p.RunDir(), PartsDir, fmt.Sprintf("%d.json", i))
}

// PartsDir is the folder of the run folder that holds the parts' outcomes
// while a parallel run is going.
const PartsDir = "parts"

// ImageSet is the parsed form of --from / --to.
type ImageSet struct {
	// Tag, when set, replaces the tag of every image of the stack that has
	// an upgrade image (the tiers a rehearsal rolls).
	Tag string
	// Images maps a service name to the exact image it runs.
	Images map[string]string
}

// Empty says whether the set changes nothing.
func (s ImageSet) Empty() bool { return s.Tag == "" && len(s.Images) == 0 }

var (
	tagRe   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	imageRe = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
)

// ParseImageSet parses an image set: either a bare tag ("v2"), applied to
// every service that has an upgrade image, or a comma-separated list of
// service=image pairs ("mx1=example/mta:2,mx2=example/mta:2").
func ParseImageSet(s string) (ImageSet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ImageSet{}, nil
	}
	if !strings.Contains(s, "=") {
		if !tagRe.MatchString(s) {
			return ImageSet{}, fmt.Errorf("%q is neither a tag nor service=image pairs", s)
		}
		return ImageSet{Tag: s}, nil
	}
	set := ImageSet{Images: map[string]string{}}
	for _, part := range strings.Split(s, ",") {
		svc, img, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || svc == "" || !imageRe.MatchString(img) {
			return ImageSet{}, fmt.Errorf("%q: want service=image", part)
		}
		if _, dup := set.Images[svc]; dup {
			return ImageSet{}, fmt.Errorf("service %q given twice", svc)
		}
		set.Images[svc] = img
	}
	return set, nil
}

// WithTag returns image with its tag replaced by tag.
func WithTag(image, tag string) string {
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image + ":" + tag
}
