package worker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/redact"
)

// minServer is the oldest nats-server the worker runs on: the timers of orders under review and
// of waiting events are message schedules (a stream's allow_msg_schedules, Nats-Schedule
// headers), which came with nats-server 2.12. An older server accepts the streams, silently
// drops the setting, and never fires a schedule: an order under review would stay pending for
// good.
var minServer = [2]int{2, 12}

// checkServer refuses a NATS server older than minServer, naming the server and what it needs.
func checkServer(nc *nats.Conn) error {
	v := nc.ConnectedServerVersion()
	if !versionAtLeast(v, minServer) {
		return fmt.Errorf("NATS server %s runs nats-server %s: the worker needs %d.%d or newer with JetStream (message schedules keep the re-checks of orders under review)",
			redact.URLs(nc.ConnectedUrl()), v, minServer[0], minServer[1])
	}
	return nil
}

// versionAtLeast reports whether the version v ("2.12.1", "2.14.0-RC.1", "v2.15.0") is at
// least major.minor of want. An unreadable version is not.
func versionAtLeast(v string, want [2]int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.SplitN(parts[1], "-", 2)[0])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > want[0] || major == want[0] && minor >= want[1]
}

// checkStoredFeatures refuses streams whose stored configuration lacks a feature the worker
// relies on: a server that does not know a setting drops it, and an administrator who manages
// the streams (-skip-stream-setup) may have left it out.
func checkStoredFeatures(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, PollStream)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", PollStream, err)
	}
	if !st.CachedInfo().Config.AllowMsgSchedules {
		return fmt.Errorf("stream %s does not allow message schedules as the server stored it (allow_msg_schedules is false): "+
			"the re-checks of orders under review would never fire; the worker needs nats-server %d.%d or newer and the stream created with allow_msg_schedules",
			PollStream, minServer[0], minServer[1])
	}
	return nil
}
