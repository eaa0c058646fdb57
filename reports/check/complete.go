package check

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mailchaos/mailchaos/history"
)

// declareReplicas records the replicas a resolve event declares (names
// separated by ","): each is owed a replica-read-done, so the replicas
// check is present, and unknown until each is read.
func (md *model) declareReplicas(names string) {
	for _, name := range strings.Split(names, ",") {
		if name = strings.TrimSpace(name); name != "" {
			md.replica(name)
		}
	}
}

// missingPhases lists the mandatory phases the history lacks, in run
// order: a complete final-read round (final-read-done), a complete read of
// each replica it read or declared (replica-read-done <name>), and the end
// of the run (done).
func (md *model) missingPhases() []string {
	var missing []string
	if len(md.rounds) == 0 {
		missing = append(missing, string(history.PhaseFinalReadDone))
	}
	var unread []string
	for i, name := range md.replicaNames.names {
		if md.replicas[i].done == 0 {
			unread = append(unread, string(history.PhaseReplicaReadDone)+" "+name)
		}
	}
	slices.Sort(unread)
	missing = append(missing, unread...)
	if !md.done {
		missing = append(missing, string(history.PhaseDone))
	}
	return missing
}

// incomplete is the overall status of a history that lacks mandatory
// phases, given what the checks and thresholds concluded. It is never a
// success. A history without its done event was cut (the run was killed
// or aborted): what it shows last, such as a downtime window still open at
// the cut, is an artefact of the cut, so even a failure is unknown; the
// reason keeps what the checks said. A history that ended but lacks a
// complete read keeps a definite failure (a message lost against a
// complete final read stays lost).
func incomplete(st Status, reason string, missing []string) (Status, string) {
	if len(missing) == 0 {
		return st, reason
	}
	what := "incomplete history: no " + strings.Join(missing, ", no ")
	cut := missing[len(missing)-1] == string(history.PhaseDone)
	switch {
	case cut && st == Failure:
		return Unknown, fmt.Sprintf("%s (the run was cut): nothing is final; the checks said: %s", what, reason)
	case st == Failure:
		return Failure, reason + "; " + what
	case st == Success:
		return Unknown, what
	}
	return Unknown, what + "; " + reason
}
