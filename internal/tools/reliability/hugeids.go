package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// Unbounded identifiers: events whose CloudEvents id or source is huge.

// Markers that start the huge identifiers, so that the log lines naming them can be found.
const (
	hugeIDMark     = "hugeid-"
	hugeSourceMark = "reliability/hugesrc/"
)

// The limits the worker applies to the envelope's identifiers (docs/events.md).
const (
	maxIDLen     = 256
	maxSourceLen = 512
)

// hugeSizes are the sizes of the huge identifiers.
const (
	hugeIDSize     = 1 << 20
	hugeSourceSize = 10 << 10
)

// logBudget is how many bytes of log a huge event may cause.
const logBudget = 4 << 10

// hugeCases are n events with a 1 MiB id and n with a 10 KiB source, each invalid, and the
// identifiers at the limits: an id of 256 bytes and a source of 512 are valid, one byte more is not.
func hugeCases(n int) []badCase {
	pad := func(mark string, size int) string { return mark + strings.Repeat("x", size-len(mark)) }
	var cs []badCase
	for i := range n {
		cs = append(cs,
			badCase{name: fmt.Sprintf("id of 1 MiB (%d)", i+1), reason: invalid, field: "id",
				body: setEnv(func(env map[string]any) { env["id"] = pad(fmt.Sprintf("%s%d-", hugeIDMark, i), hugeIDSize) })},
			badCase{name: fmt.Sprintf("source of 10 KiB (%d)", i+1), reason: invalid, field: "source",
				body: setEnv(func(env map[string]any) { env["source"] = pad(fmt.Sprintf("%s%d/", hugeSourceMark, i), hugeSourceSize) })})
	}
	// At the limits, ids that are the start id padded, unique per run.
	grow := func(key string, size int) func(env map[string]any) {
		return func(env map[string]any) { env[key] = pad(env[key].(string)+"-", size) }
	}
	return append(cs,
		badCase{name: "id of 256 bytes", body: setEnv(grow("id", maxIDLen)), outcome: events.TypeCreditOK},
		badCase{name: "id of 257 bytes", body: setEnv(grow("id", maxIDLen+1)), reason: invalid, field: "id"},
		badCase{name: "source of 512 bytes", body: setEnv(grow("source", maxSourceLen)), outcome: events.TypeCreditOK},
		badCase{name: "source of 513 bytes", body: setEnv(grow("source", maxSourceLen+1)), reason: invalid, field: "source"})
}

// hugeCount is how many events of each huge kind the scenario sends.
func (x *run) hugeCount() int {
	if x.r.opts.Quick {
		return 20
	}
	return 100
}

// injectHugeIDs publishes the huge-identifier cases when 30% of the orders have started, waits
// until each is answered, and measures what they cost: the private Redis's used_memory before and
// after (the workload's own growth in those seconds included) and the bytes of the worker's log
// lines that name one of them. Redis must grow by less than a tenth of the identifiers' size, the
// log by at most logBudget per huge event.
func injectHugeIDs(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.3); err != nil {
		return err
	}
	before, err := x.s.RedisServer.UsedMemory(ctx)
	if err != nil {
		return err
	}
	n := x.hugeCount()
	start := time.Now()
	sent, err := x.d.sendCases(ctx, hugeCases(n), "H")
	if err != nil {
		return err
	}
	for _, e := range sent {
		if _, ok := x.d.first(ctx, e); !ok {
			return ctx.Err()
		}
	}
	after, err := x.s.RedisServer.UsedMemory(ctx)
	if err != nil {
		return err
	}
	logged, lines, err := x.markedLogBytes()
	if err != nil {
		return err
	}
	idBytes := int64(n) * (hugeIDSize + hugeSourceSize)
	grew := after - before
	x.note = fmt.Sprintf("%d ids of 1 MiB, %d sources of 10 KiB: Redis %+.1f MiB, log %.1f KiB", n, n, mib(grew), float64(logged)/1024)
	x.notef("the huge identifiers (%.1f MiB) were published and answered within %s; Redis used_memory %.1f → %.1f MiB meanwhile; %d log lines name one of them, %d bytes",
		mib(idBytes), time.Since(start).Round(100*time.Millisecond), mib(before), mib(after), lines, logged)
	if grew > idBytes/10 {
		x.find("huge identifiers kept", "Redis grew by %.1f MiB while %d events carried %.1f MiB of identifiers (limit a tenth)", mib(grew), 2*n, mib(idBytes))
	}
	if logged > int64(2*n*logBudget) {
		x.find("huge identifiers logged", "%d bytes of log lines name the %d huge identifiers (limit %d bytes each)", logged, 2*n, logBudget)
	}
	return nil
}

// markedLogBytes sums the lines of the worker's logs that name a huge identifier.
func (x *run) markedLogBytes() (bytesLogged int64, lines int, err error) {
	for _, w := range x.s.Workers {
		raw, err := os.ReadFile(w.Log)
		if err != nil {
			return 0, 0, err
		}
		for line := range bytes.SplitSeq(raw, []byte("\n")) {
			if bytes.Contains(line, []byte(hugeIDMark)) || bytes.Contains(line, []byte(hugeSourceMark)) {
				bytesLogged += int64(len(line)) + 1
				lines++
			}
		}
	}
	return bytesLogged, lines, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
