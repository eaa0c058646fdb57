//go:build !linux

package main

import "syscall"

// partProcAttr starts a part in a process group of its own: the
// terminal's Ctrl-C reaches it once, passed on by the parent.
func partProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
