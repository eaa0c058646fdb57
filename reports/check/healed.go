package check

import "fmt"

// healed checks that the run healed what it broke: once the heal phase
// has begun, every injected fault has its heal event, and no inject or
// heal call failed. A fault left in place, or one that never took
// effect, means the later phases did not test what the scenario says.
func (md *model) healed(*Verdict) Result {
	res := Result{Name: CheckFaultsHealed}
	ev := md.newEvidence(CheckFaultsHealed)
	for _, f := range md.faults {
		switch {
		case f.Failed:
			ev.add(Evidence{Problem: "fault-failed", At: f.Start, Detail: fmt.Sprintf("%s(%s): its inject or heal call failed", f.Name, f.Target)})
		case !f.Healed && md.healPhase:
			ev.add(Evidence{Problem: "fault-not-healed", At: f.Start, Detail: fmt.Sprintf("%s(%s) injected at %s has no heal event", f.Name, f.Target, f.Start)})
		}
	}
	switch n := len(ev.items) + ev.omitted; {
	case n > 0:
		res.Status, res.Reason = Failure, fmt.Sprintf("%d of %d faults failed or were not healed", n, len(md.faults))
	case !md.healPhase:
		res.Status, res.Reason = Unknown, "no heal phase in the history"
	default:
		res.Status, res.Reason = Success, fmt.Sprintf("%d faults injected and healed", len(md.faults))
	}
	ev.into(&res)
	return res
}
