package worker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

func TestVersionAtLeast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"2.9.25", false}, {"2.11.9", false}, {"2.12.0", true}, {"2.12.1", true}, {"2.15.0", true},
		{"v2.12.0", true}, {"2.12.0-RC.3", true}, {"2.11.0-beta", false}, {"3.0.0", true}, {"1.99.0", false},
		{"", false}, {"two.twelve", false}, {"2", false},
	} {
		if got := versionAtLeast(tt.v, minServer); got != tt.want {
			t.Errorf("versionAtLeast(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// fakeOldServer speaks the start of the NATS protocol as nats-server 2.9 does (INFO, then PONG
// to PING), which is all a client sees before it uses JetStream.
func fakeOldServer(t *testing.T, version string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte(`INFO {"server_id":"OLD","version":"` + version + `","proto":1,"headers":true,"jetstream":true,"max_payload":1048576}` + "\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						_, _ = c.Write([]byte("PONG\r\n"))
					}
				}
			}()
		}
	}()
	return "nats://" + l.Addr().String()
}

// TestOldNATSServerIsRefused: against nats-server 2.9 the worker started, reported ready, and
// never re-checked an order under review. It now refuses to start, saying what it needs.
func TestOldNATSServerIsRefused(t *testing.T) {
	t.Parallel()
	nc, err := nats.Connect(fakeOldServer(t, "2.9.25"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // without the check, Run would run
	defer cancel()
	err = Run(ctx, Deps{Settings: config.DefaultSettings(), NATS: nc, Logger: zaptest.NewLogger(t)})
	want := "runs nats-server 2.9.25: the worker needs 2.12 or newer with JetStream"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run on nats-server 2.9.25: %v, want an error saying %q", err, want)
	}
}

// TestPollStreamWithoutSchedulesIsRefused: a poll stream stored without message schedules (made
// by an administrator, for -skip-stream-setup, or by a server that dropped the setting) is
// refused at start-up instead of holding timers that never fire.
func TestPollStreamWithoutSchedulesIsRefused(t *testing.T) {
	t.Parallel()
	url, js := testenv.JetStream(t)
	ctx := context.Background()
	s := config.DefaultSettings()
	if _, err := setup(ctx, js, s); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, PollStream); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfigs(s, js.Conn().MaxPayload())[3]
	cfg.AllowMsgSchedules, cfg.Discard = false, jetstream.DiscardNew
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, PollStream, jetstream.ConsumerConfig{
		Durable: pollConsumer, FilterSubject: pollDueFilter, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rdb, prefix := testenv.Redis(t)
	s.SkipStreamSetup = true
	s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	runCtx, cancel := context.WithTimeout(ctx, 20*time.Second) // without the check, Run would run
	defer cancel()
	err = Run(runCtx, Deps{Settings: s, NATS: nc, Redis: rdb, KeyPrefix: prefix, Logger: zaptest.NewLogger(t)})
	want := "stream " + PollStream + " does not allow message schedules as the server stored it"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v, want an error saying %q", err, want)
	}
}

// TestReadyzRefusesAnOldServer: a worker that reconnected to an older server of its list (one
// without message schedules) is not ready, and says why.
func TestReadyzRefusesAnOldServer(t *testing.T) {
	t.Parallel()
	nc, err := nats.Connect(fakeOldServer(t, "2.9.25"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h := newHealth(nc, answers{}, &consumer.Infra{}, func() []string { return nil })
	h.ready.Store(true)
	rec := httptest.NewRecorder()
	h.readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "runs nats-server 2.9.25") {
		t.Fatalf("/readyz on nats-server 2.9.25: %d %q, want 503 naming the version", rec.Code, rec.Body.String())
	}
}

// answers is a Redis that always answers.
type answers struct{}

func (answers) Ping(context.Context) error { return nil }
