// Package procstat owns reading the CPU time and memory of one process from
// Linux's /proc: PSS and private/shared memory from smaps_rollup, CPU time,
// threads, state and start time from stat, and the command line.
//
// It knows nothing of pools, apps or metrics: callers give it a pid and get
// a [Sample] back. [Tracker] adds the one piece of state a caller needs to
// turn cumulative CPU time into a percentage. A process that is gone (or a
// zombie, whose memory is already released) is reported with an error for
// which errors.Is(err, os.ErrNotExist) holds, so callers can tell "exited"
// from "cannot read".
package procstat
