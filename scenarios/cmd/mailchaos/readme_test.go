package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/faults"
)

// The README is a promise: every mailchaos command and flag, every make
// target and every fault kind it names exists, and the fault table lists
// every kind there is.

const readmePath = "../../../README.md"

// otherTools are flags the README shows for commands that are not
// mailchaos, each with the tool it belongs to.
var otherTools = map[string]string{
	"--variant": "debootstrap", "--network": "docker build", "-c": "sha256sum", "-xzf": "tar",
	"-args": "go test", "-x": "tar", "-verify": "openssl", "-sigfile": "openssl", "-rawin": "openssl",
	"-pubin": "openssl", "-inkey": "openssl", "-in": "openssl", "-algorithm": "openssl",
	"-d": "cut", "-f1": "cut", "-lf": "ssh-keygen", "-t": "ssh-keygen",
}

// externalTools start README lines that show another program's command
// line (its flags are that program's).
var externalTools = []string{"swaks", "curl", "docker", "debootstrap", "sha256sum", "tar", "openssl", "go", "apt-get", "git", "ginkgo"}

// codeOf returns the README's code: fenced blocks and inline spans.
func codeOf(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var code []string
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			code = append(code, line)
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(line, -1) {
			code = append(code, m[1])
		}
	}
	return code
}

// flagsOf returns the flags a subcommand prints on -h.
func flagsOf(t *testing.T, name string) map[string]bool {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	run(context.Background(), []string{"help", name}, io.Discard, io.Discard)
	os.Stderr = saved
	w.Close()
	out := string(<-done)
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(out, -1) {
		flags[m[1]] = true
	}
	return flags
}

func TestREADMECommandsAndFlags(t *testing.T) {
	code := codeOf(t)
	all := map[string]bool{}
	perCmd := map[string]map[string]bool{}
	for name, c := range commands {
		if c.hidden {
			continue // not for people: the README does not name it
		}
		perCmd[name] = flagsOf(t, name)
		for f := range perCmd[name] {
			all[f] = true
		}
	}
	if len(perCmd["run"]) < 10 {
		t.Fatalf("read only %d flags of run: the help parser is broken", len(perCmd["run"]))
	}
	cmdRE := regexp.MustCompile(`(?:^|[\s/])mailchaos ([a-z][a-z-]*)(.*)`)
	flagRE := regexp.MustCompile(`(?:^|\s)(--?[a-z][a-z0-9-]*)`)
	for _, c := range code {
		if m := cmdRE.FindStringSubmatch(c); m != nil {
			name, rest := m[1], m[2]
			if _, ok := commands[name]; !ok {
				t.Errorf("README names `mailchaos %s`, which is no command (%q)", name, c)
				continue
			}
			if i := strings.IndexAny(rest, "#|;"); i >= 0 {
				rest = rest[:i] // a comment or another command
			}
			for _, f := range flagRE.FindAllStringSubmatch(rest, -1) {
				if !perCmd[name][strings.TrimLeft(f[1], "-")] {
					t.Errorf("README shows `mailchaos %s %s`, which has no such flag (%q)", name, f[1], c)
				}
			}
			continue
		}
		if fields := strings.Fields(c); len(fields) > 0 && slices.Contains(externalTools, fields[0]) {
			continue
		}
		for _, f := range flagRE.FindAllStringSubmatch(c, -1) {
			if _, other := otherTools[f[1]]; !other && !all[strings.TrimLeft(f[1], "-")] {
				t.Errorf("README names flag %s, which no mailchaos command has (%q)", f[1], c)
			}
		}
	}
}

func TestREADMEMakeTargets(t *testing.T) {
	mk, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z-]*):`).FindAllStringSubmatch(string(mk), -1) {
		targets[m[1]] = true
	}
	n := 0
	for _, c := range codeOf(t) {
		for _, m := range regexp.MustCompile(`(?:^|\s)make ([a-z][a-z-]*)`).FindAllStringSubmatch(c, -1) {
			n++
			if !targets[m[1]] {
				t.Errorf("README names `make %s`, which the Makefile does not have (%q)", m[1], c)
			}
		}
	}
	if n < 5 {
		t.Errorf("found only %d make commands in the README: the parser is broken", n)
	}
}

// The fault table lists every registered kind, and nothing else.
func TestREADMEFaultTable(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "| class | kinds (target) | inject / heal |")
	if !ok {
		t.Fatal("no fault table in the README")
	}
	if i := strings.Index(table, "\n\n"); i >= 0 {
		table = table[:i]
	}
	var listed []string
	for _, row := range strings.Split(table, "\n") {
		cols := strings.Split(strings.ReplaceAll(row, `\|`, "/"), "|")
		if len(cols) < 3 {
			continue
		}
		for _, m := range regexp.MustCompile("`([a-z][a-z-]*)(?::[^`]*)?`").FindAllStringSubmatch(cols[2], -1) {
			if !slices.Contains(listed, m[1]) {
				listed = append(listed, m[1])
			}
		}
	}
	slices.Sort(listed)
	if got, want := strings.Join(listed, " "), strings.Join(faults.KindNames(), " "); got != want {
		t.Errorf("README's fault table lists\n  %s\nthe registry has\n  %s", got, want)
	}
}
