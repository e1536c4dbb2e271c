package pool

import "sync"

// EventKind is what happened to a group. Its String is the name hooks and
// logs know it by.
type EventKind int

const (
	EventProcessAttached EventKind = iota + 1
	EventProcessDetached
	EventSpawnFailed
	EventQueueFull
	// EventRestarted: a blocking restart finished.
	EventRestarted
	EventRollingRestartFinished
	EventRollingRestartFailed
)

var eventNames = [...]string{
	EventProcessAttached:        "process_attached",
	EventProcessDetached:        "process_detached",
	EventSpawnFailed:            "spawn_failed",
	EventQueueFull:              "queue_full",
	EventRestarted:              "restarted",
	EventRollingRestartFinished: "rolling_restart_finished",
	EventRollingRestartFailed:   "rolling_restart_failed",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is something that happened to the group.
type Event struct {
	Kind EventKind
	PID  int   // the process's, for process events
	Err  error // the spawn or restart error
}

// notifier delivers a group's events to Config.Events, always the same
// way: in the order they happened, on a goroutine of its own (never the
// emitter's, which may hold the group's lock), one at a time. It runs only
// while events are pending.
type notifier struct {
	deliver func(Event)

	mu      sync.Mutex
	queue   []Event
	running chan struct{} // non-nil while delivering; closed when done
}

// emit queues e for delivery; it never blocks on the receiver.
func (n *notifier) emit(e Event) {
	if n.deliver == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = append(n.queue, e)
	if n.running == nil {
		n.running = make(chan struct{})
		go n.run(n.running)
	}
}

func (n *notifier) run(done chan struct{}) {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.queue, n.running = n.queue[:0], nil
			n.mu.Unlock()
			close(done)
			return
		}
		e := n.queue[0]
		n.queue[0] = Event{}
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.deliver(e)
	}
}

// wait returns once every event emitted so far has been delivered.
func (n *notifier) wait() {
	for {
		n.mu.Lock()
		done := n.running
		n.mu.Unlock()
		if done == nil {
			return
		}
		<-done
	}
}
