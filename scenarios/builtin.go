package scenarios

import (
	"embed"
	"io/fs"

	"github.com/mailchaos/mailchaos/scenarios/flow"
	"github.com/mailchaos/mailchaos/scenarios/scenariofile"
)

// builtinFiles are the built-in scenarios, as scenario files: the same
// format a team writes its own in (--scenario-file), driven by the same
// generic driver (define).
//
//go:embed builtin/*.yaml
var builtinFiles embed.FS

// Builtin returns the built-in scenarios, parsed from their files.
func Builtin() ([]flow.Scenario, error) {
	sub, err := fs.Sub(builtinFiles, "builtin")
	if err != nil {
		return nil, err
	}
	return scenariofile.LoadFS(sub)
}

// The built-in scenarios join the suite when the package loads, as Go
// scenario definitions did: a broken built-in file is a programming error
// that the package's tests catch.
var _ = func() bool {
	list, err := Builtin()
	if err != nil {
		panic(err)
	}
	for _, s := range list {
		if err := define(s); err != nil {
			panic(err)
		}
	}
	return true
}()

// AddScenarioFiles reads a team's scenario files (files or folders) and
// adds them to the suite. Every problem of every file is reported at once
// and nothing is added; a name already used (by a built-in scenario or
// another file) is a problem too. Call it before RunSuite.
func AddScenarioFiles(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	list, err := scenariofile.LoadAll(paths)
	if err != nil {
		return err
	}
	if err := scenariofile.Duplicates(append(Catalog(), list...)); err != nil {
		return err
	}
	for _, s := range list {
		if err := define(s); err != nil {
			return err
		}
	}
	return nil
}
