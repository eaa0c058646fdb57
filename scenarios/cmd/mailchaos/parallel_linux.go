package main

import "syscall"

// partProcAttr starts a part in a process group of its own (the terminal's
// Ctrl-C reaches it once, passed on by the parent) and has it stop in
// order when the parent dies.
func partProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
