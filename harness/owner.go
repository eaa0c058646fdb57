package harness

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Labels that say who owns a run's resources, put on every container,
// network and volume beside LabelRun. A bare Clean removes a run only when
// its owner process is gone, so a run in progress (of this user or of
// another on the same engine) is never removed under it.
const (
	// LabelGroup carries the id of the whole mailchaos run a stack belongs
	// to (a scenario's stack is run "<group>-<scenario>"): Clean --run
	// <group> removes every stack of it.
	LabelGroup = "mailchaos.group"
	// LabelOwnerHost is the host name of the process that made the run.
	LabelOwnerHost = "mailchaos.owner.host"
	// LabelOwnerPID is that process's id.
	LabelOwnerPID = "mailchaos.owner.pid"
	// LabelOwnerStart is that process's start time as the kernel counts it
	// ("<boot id>/<clock ticks since boot>" on Linux; "" elsewhere): a pid
	// reused by another process after a reboot or a wrap-around does not
	// pass for the owner.
	LabelOwnerStart = "mailchaos.owner.start"
)

// Owner is the process that made a run's resources.
type Owner struct {
	// Host is the host name the process ran on.
	Host string
	// PID is its process id.
	PID int
	// Start is its start time as processStart reads it ("" where the OS
	// does not say).
	Start string
}

// String formats the owner for messages: "pid 1234 on host x".
func (o Owner) String() string { return fmt.Sprintf("pid %d on host %s", o.PID, o.Host) }

// labels are the owner labels of o.
func (o Owner) labels() map[string]string {
	return map[string]string{LabelOwnerHost: o.Host, LabelOwnerPID: strconv.Itoa(o.PID), LabelOwnerStart: o.Start}
}

// ownerFrom reads the owner labels; ok is false when a resource has none
// (made before mailchaos labelled owners).
func ownerFrom(labels map[string]string) (Owner, bool) {
	pid, err := strconv.Atoi(labels[LabelOwnerPID])
	if err != nil || labels[LabelOwnerHost] == "" {
		return Owner{}, false
	}
	return Owner{Host: labels[LabelOwnerHost], PID: pid, Start: labels[LabelOwnerStart]}, true
}

var self = sync.OnceValue(func() Owner {
	host, _ := os.Hostname()
	return Owner{Host: host, PID: os.Getpid(), Start: processStart(os.Getpid())}
})

// Self returns the current process as an Owner.
func Self() Owner { return self() }

// Liveness says whether a run's owner still runs.
type Liveness int

// The owner states. Only OwnerGone makes a run stale: a bare Clean
// removes it; the others need --force.
const (
	// OwnerUnknown: the owner cannot be checked from here (another host,
	// or a run made before owner labels).
	OwnerUnknown Liveness = iota
	// OwnerAlive: the owner process runs.
	OwnerAlive
	// OwnerGone: the owner process is gone (killed, crashed), on this host.
	OwnerGone
)

// liveness judges o from this host: why says it in words.
func (o Owner) liveness() (l Liveness, why string) {
	me := Self()
	if o.Host != me.Host {
		return OwnerUnknown, fmt.Sprintf("owner %s, not this host: cannot tell whether it runs", o)
	}
	if o.PID == me.PID && o.Start == me.Start {
		return OwnerAlive, fmt.Sprintf("owner %s is this process", o)
	}
	alive, err := pidAlive(o.PID)
	switch {
	case err != nil:
		return OwnerUnknown, fmt.Sprintf("owner %s: %v", o, err)
	case !alive:
		return OwnerGone, fmt.Sprintf("owner %s is gone", o)
	}
	if o.Start == "" {
		return OwnerAlive, fmt.Sprintf("owner %s runs (its start time is unknown: it may be another process with that pid)", o)
	}
	if now := processStart(o.PID); now != "" && now != o.Start {
		return OwnerGone, fmt.Sprintf("owner %s is gone (pid %d is now another process)", o, o.PID)
	}
	return OwnerAlive, fmt.Sprintf("owner %s runs", o)
}

// pidAlive says whether a process with pid exists (signal 0: EPERM means
// it exists but belongs to another user).
func pidAlive(pid int) (bool, error) {
	if pid <= 0 {
		return false, fmt.Errorf("bad pid %d", pid)
	}
	err := syscall.Kill(pid, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EPERM):
		return true, nil
	case errors.Is(err, syscall.ESRCH):
		return false, nil
	}
	return false, fmt.Errorf("check pid %d: %w", pid, err)
}

// processStart returns the start time of process pid as
// "<boot id>/<ticks since boot>" from /proc, or "" where there is no /proc
// (the owner is then judged by its pid alone).
func processStart(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one. starttime is field 22.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	const starttime = 22 - 3 // fields[0] is field 3
	if len(fields) <= starttime {
		return ""
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + "/" + fields[starttime]
}
