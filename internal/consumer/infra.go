package consumer

import (
	"sync"
	"time"
)

// Infra tracks the failures of the worker's own servers (Redis, JetStream) that keep messages
// waiting, for readiness and metrics. The zero value is ready to use; a nil *Infra tracks nothing.
type Infra struct {
	mu      sync.Mutex
	since   time.Time // the first failure since the last success; zero when none
	last    error
	waiting int
}

// Failing returns, while the last handling or dead letter failed because of Redis or JetStream,
// since when and the last error.
func (s *Infra) Failing() (since time.Time, err error, failing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since, s.last, !s.since.IsZero()
}

// Waiting returns how many messages are kept, waiting for Redis or JetStream to recover.
func (s *Infra) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

func (s *Infra) failed(err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		s.since = time.Now()
	}
	s.last = err
}

func (s *Infra) succeeded() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since, s.last = time.Time{}, nil
}

func (s *Infra) hold(n int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting += n
}
