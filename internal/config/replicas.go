package config

import (
	"fmt"
	"strconv"
)

// ReplicaWait is how many Redis replicas must hold a registration intent before ATODENE is called
// (orderstate.Replication): a count, or AutoReplicas.
type ReplicaWait int

// AutoReplicas waits for one replica when the master reports one online at start-up (INFO
// replication), and for none otherwise.
const AutoReplicas ReplicaWait = -1

// String writes "auto" or the count.
func (r ReplicaWait) String() string {
	if r == AutoReplicas {
		return "auto"
	}
	return strconv.Itoa(int(r))
}

// Set parses "auto" or a count from 0 (no wait) up.
func (r *ReplicaWait) Set(s string) error {
	if s == "auto" {
		*r = AutoReplicas
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want auto or a number of replicas from 0", s)
	}
	*r = ReplicaWait(n)
	return nil
}
