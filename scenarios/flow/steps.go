package flow

import "github.com/mailchaos/mailchaos/history"

// Step names one step of a scenario run as the driver sequences it: a
// step runs only after the steps it needs succeeded (Run.Need), and
// Run.Err reports the first that failed. The steps that write a phase
// event into the history share the phase's name.
type Step string

// The steps of a run, in run order.
const (
	StepUp        Step = "up"                         // the stack is brought up
	StepSteady    Step = Step(history.PhaseSteady)    // clean load before faults
	StepLoad      Step = Step(history.PhaseLoad)      // load under the fault timeline
	StepHeal      Step = Step(history.PhaseHeal)      // every fault healed
	StepConverge  Step = Step(history.PhaseConverge)  // the convergence window
	StepFinalRead Step = Step(history.PhaseFinalRead) // the final read rounds and replica reads
	StepCheck     Step = "check"                      // the history judged
	StepTeardown  Step = "teardown"                   // the stack removed
)

// Steps lists the steps in run order.
var Steps = []Step{StepUp, StepSteady, StepLoad, StepHeal, StepConverge, StepFinalRead, StepCheck, StepTeardown}
