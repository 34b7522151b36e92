package redisadmin

import (
	"slices"
	"testing"
)

// TestSlots: the master of a slot, the masters in the order of their first slot, each once,
// and the ranges of one master, as a cluster reports them after a failover moved a range.
func TestSlots(t *testing.T) {
	t.Parallel()
	s := Slots{
		{0, 5460, "127.0.0.1:7001"},
		{5461, 8000, "127.0.0.1:7002"},
		{8001, 10922, "127.0.0.1:7001"},
		{10923, 16383, "127.0.0.1:7003"},
	}
	for _, tc := range []struct {
		slot int
		want string
	}{{0, "127.0.0.1:7001"}, {5461, "127.0.0.1:7002"}, {8001, "127.0.0.1:7001"}, {16383, "127.0.0.1:7003"}, {16384, ""}, {-1, ""}} {
		if got := s.MasterOf(tc.slot); got != tc.want {
			t.Errorf("MasterOf(%d) = %q, want %q", tc.slot, got, tc.want)
		}
	}
	if got, want := s.Masters(), []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}; !slices.Equal(got, want) {
		t.Errorf("Masters() = %v, want %v", got, want)
	}
	if got, want := s.Of("127.0.0.1:7001"), (Slots{{0, 5460, "127.0.0.1:7001"}, {8001, 10922, "127.0.0.1:7001"}}); !slices.Equal(got, want) {
		t.Errorf("Of(7001) = %v, want %v", got, want)
	}
	if got := s.Of("127.0.0.1:7009"); got != nil {
		t.Errorf("Of(a node that is no master) = %v, want none", got)
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"127.0.0.1:7001"}, "redis-cluster://127.0.0.1:7001"},
		{[]string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}, "redis-cluster://127.0.0.1:7001?addr=127.0.0.1:7002&addr=127.0.0.1:7003"},
	} {
		if got := URL(tc.addrs); got != tc.want {
			t.Errorf("URL(%v) = %q, want %q", tc.addrs, got, tc.want)
		}
	}
}
