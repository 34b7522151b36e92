package sandbox

import (
	"maps"
	"strconv"
)

// Stats is the body of GET /sandbox/stats: calls to the five operations since start or reset.
type Stats struct {
	// Operations are keyed by operation name: transaction, getauthori, shippingrequest,
	// modifytransaction, getinvoicedata.
	Operations map[string]*OperationStats `json:"operations"`
	// Statuses counts answers per HTTP status over all operations.
	Statuses map[string]int `json:"statuses"`
	// Unanswered counts requests that got no answer (timeout faults, clients gone during latency).
	Unanswered int `json:"unanswered"`
}

// OperationStats counts the calls to one operation.
type OperationStats struct {
	Calls      int            `json:"calls"`
	Statuses   map[string]int `json:"statuses"` // per HTTP status, e.g. "200", "500"
	Unanswered int            `json:"unanswered"`
	Results    map[string]int `json:"results"` // per result, OK or NG, whether or not it was delivered
	Faults     map[string]int `json:"faults"`  // per injected fault: error, timeout, garbage
}

func newStats() *Stats {
	st := &Stats{Operations: map[string]*OperationStats{}, Statuses: map[string]int{}}
	for _, op := range operations {
		st.Operations[op] = &OperationStats{Statuses: map[string]int{}, Results: map[string]int{}, Faults: map[string]int{}}
	}
	return st
}

// record counts one request; status 0 means no answer was sent.
func (st *Stats) record(op string, status int, result string, f fault) {
	o := st.Operations[op]
	o.Calls++
	if status == 0 {
		o.Unanswered++
		st.Unanswered++
	} else {
		code := strconv.Itoa(status)
		o.Statuses[code]++
		st.Statuses[code]++
	}
	if result != "" {
		o.Results[result]++
	}
	if f != faultNone {
		o.Faults[string(f)]++
	}
}

// clone copies the stats so they can be encoded outside the lock.
func (st *Stats) clone() *Stats {
	c := &Stats{Operations: map[string]*OperationStats{}, Statuses: maps.Clone(st.Statuses), Unanswered: st.Unanswered}
	for name, o := range st.Operations {
		c.Operations[name] = &OperationStats{
			Calls: o.Calls, Statuses: maps.Clone(o.Statuses), Unanswered: o.Unanswered,
			Results: maps.Clone(o.Results), Faults: maps.Clone(o.Faults),
		}
	}
	return c
}
