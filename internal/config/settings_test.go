package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// getenv returns a getenv function over vars.
func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// servers are the two settings without a default outside -embedded.
var servers = map[string]string{"ATODENE_WORKER_NATS_URL": "nats://n:4222", "ATODENE_WORKER_REDIS_URL": "redis://r:6379"}

func TestParseSettingsDefaults(t *testing.T) {
	t.Parallel()
	got, err := ParseSettings(nil, getenv(servers), io.Discard)
	if err != nil {
		t.Fatalf("ParseSettings: %v", err)
	}
	want := Settings{
		NATSURL: "nats://n:4222", RedisURL: "redis://r:6379",
		ShopsFile: "shops.yaml", RedisPrefix: "atodene:", HTTPAddr: "127.0.0.1:9090", Concurrency: 512,
		ProviderTimeout: 30 * time.Second, AckWait: 2 * time.Minute, MaxDeliveries: 10,
		PollFirstDelay: time.Minute, PollMaxInterval: 30 * time.Minute, PollDeadline: 336 * time.Hour, ParkLimit: 168 * time.Hour, MinReauthorizeAfter: time.Hour,
		LogLevel: zapcore.InfoLevel, ShutdownGrace: 30 * time.Second, DataDir: "./data",
		EmbeddedNATSAddr: "127.0.0.1:14222", EmbeddedRedisAddr: "127.0.0.1:16379", EmbeddedConsoleAddr: "127.0.0.1:18090",
		OrdersStream: "ORDERS", ResultsStream: "RESULTS", DLQStream: "DLQ",
		OrdersRetention: 168 * time.Hour, ResultsRetention: 720 * time.Hour, DLQRetention: 720 * time.Hour,
		DuplicateWindow: 2 * time.Minute, StreamReplicas: 1, StreamBytes: 4 << 30,
		ReconcileInterval: time.Minute, Retention: 9600 * time.Hour,
		RedisWaitReplicas: AutoReplicas, RedisWaitTimeout: time.Second,
	}
	if got != want {
		t.Errorf("defaults =\n%+v\nwant\n%+v", got, want)
	}
	if d := DefaultSettings(); d != (Settings{RedisWaitReplicas: AutoReplicas}.withDefaults()) || d.NATSURL != "" || d.ShopsFile != want.ShopsFile {
		t.Errorf("DefaultSettings() = %+v, want the defaults above without servers", d)
	}
	if err := want.validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestParseSettingsPrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"ATODENE_WORKER_CONCURRENCY":       "64",
		"ATODENE_WORKER_NATS_URL":          "nats://env:4222",
		"ATODENE_WORKER_LOG_LEVEL":         "debug",
		"ATODENE_WORKER_SKIP_STREAM_SETUP": "true",
		"ATODENE_WORKER_ACK_WAIT":          "5m",
		"ATODENE_WORKER_REDIS_URL":         "redis://env:6379",
		"ATODENE_WORKER_NATS_CREDS":        "", // empty counts as unset
	}
	args := []string{"-concurrency", "8", "-config=/etc/worker/shops.yaml", "-ack-wait=3m"}
	got, err := ParseSettings(args, getenv(env), io.Discard)
	if err != nil {
		t.Fatalf("ParseSettings: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flag over env", got.Concurrency, 8},
		{"flag over env (duration)", got.AckWait, 3 * time.Minute},
		{"flag over default", got.ShopsFile, "/etc/worker/shops.yaml"},
		{"env over default", got.NATSURL, "nats://env:4222"},
		{"env over default (level)", got.LogLevel, zapcore.DebugLevel},
		{"env over default (bool)", got.SkipStreamSetup, true},
		{"empty env is unset", got.NATSCredsFile, ""},
		{"default", got.MaxDeliveries, 10},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseSettingsFlagOverridesBadEnv(t *testing.T) {
	t.Parallel()
	env := maps.Clone(servers)
	env["ATODENE_WORKER_CONCURRENCY"] = "lots"
	got, err := ParseSettings([]string{"-concurrency=4"}, getenv(env), io.Discard)
	if err != nil || got.Concurrency != 4 {
		t.Fatalf("ParseSettings = %d, %v; want 4 and no error: the flag wins over the bad variable", got.Concurrency, err)
	}
}

func TestParseSettingsBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // every problem, in order, each a part of its line
	}{
		{"empty config", []string{"-config="}, nil, []string{"-config (ATODENE_WORKER_CONFIG): required"}},
		{"nats url without scheme", []string{"-nats-url=localhost:4222"}, nil, []string{
			`-nats-url (ATODENE_WORKER_NATS_URL): want nats://host:port or tls://host:port or ws://host:port or wss://host:port (the value is not quoted: it may hold a credential)`}},
		{"one bad nats url of two", []string{"-nats-url=nats://a:4222, http://b:4222"}, nil, []string{`-nats-url (ATODENE_WORKER_NATS_URL): "http://b:4222"`}},
		{"nats url password redacted", []string{"-nats-url=http://user:hunter2@a:4222"}, nil, []string{`"http://xxxxx@a:4222"`}},
		{"no servers to parse", nil, map[string]string{"ATODENE_WORKER_NATS_URL": "", "ATODENE_WORKER_REDIS_URL": ""}, nil},
		{"creds without nats url", []string{"-embedded", "-nats-creds=w.creds", "-nats-ca=ca.pem"}, map[string]string{"ATODENE_WORKER_NATS_URL": ""}, []string{
			"-nats-creds (ATODENE_WORKER_NATS_CREDS): needs -nats-url", "-nats-ca (ATODENE_WORKER_NATS_CA): needs -nats-url"}},
		{"tls and nkey files without nats url", []string{"-embedded", "-nats-nkey=w.nk", "-nats-cert=c.pem", "-nats-key=k.pem"}, map[string]string{"ATODENE_WORKER_NATS_URL": ""}, []string{
			"-nats-nkey (ATODENE_WORKER_NATS_NKEY): needs -nats-url",
			"-nats-cert (ATODENE_WORKER_NATS_CERT): needs -nats-url", "-nats-key (ATODENE_WORKER_NATS_KEY): needs -nats-url"}},
		{"nkey and creds", []string{"-nats-nkey=w.nk", "-nats-creds=w.creds"}, nil, []string{"-nats-nkey (ATODENE_WORKER_NATS_NKEY): not with -nats-creds"}},
		{"nats cert without key", []string{"-nats-cert=c.pem"}, nil, []string{"-nats-cert (ATODENE_WORKER_NATS_CERT): needs -nats-key"}},
		{"nats key without cert", nil, map[string]string{"ATODENE_WORKER_NATS_KEY": "k.pem"}, []string{"-nats-key (ATODENE_WORKER_NATS_KEY): needs -nats-cert"}},
		{"nats tls files", []string{"-nats-url=tls://a:4222", "-nats-ca=ca.pem", "-nats-cert=c.pem", "-nats-key=k.pem"}, nil, nil},
		{"nats nkey", nil, map[string]string{"ATODENE_WORKER_NATS_NKEY": "w.nk"}, nil},
		{"redis tls files without rediss", []string{"-redis-ca=ca.pem", "-redis-cert=c.pem", "-redis-key=k.pem"}, nil, []string{
			"-redis-ca (ATODENE_WORKER_REDIS_CA): needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url",
			"-redis-cert (ATODENE_WORKER_REDIS_CERT): needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url",
			"-redis-key (ATODENE_WORKER_REDIS_KEY): needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url"}},
		{"redis tls files with the embedded redis", []string{"-embedded", "-redis-ca=ca.pem"}, map[string]string{"ATODENE_WORKER_NATS_URL": "", "ATODENE_WORKER_REDIS_URL": ""}, []string{
			"-redis-ca (ATODENE_WORKER_REDIS_CA): needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url"}},
		{"redis cert without key", []string{"-redis-url=rediss://:hunter2@r:6380", "-redis-cert=c.pem"}, nil, []string{"-redis-cert (ATODENE_WORKER_REDIS_CERT): needs -redis-key"}},
		{"redis key without cert", []string{"-redis-url=rediss://r:6380", "-redis-key=k.pem"}, nil, []string{"-redis-key (ATODENE_WORKER_REDIS_KEY): needs -redis-cert"}},
		{"redis tls files", nil, map[string]string{"ATODENE_WORKER_REDIS_URL": "rediss://r:6380", "ATODENE_WORKER_REDIS_CA": "ca.pem",
			"ATODENE_WORKER_REDIS_CERT": "c.pem", "ATODENE_WORKER_REDIS_KEY": "k.pem"}, nil},
		{"redis sentinel url", []string{"-redis-url=redis-sentinel://:pw@s1:26379/0?master_name=m&addr=s2:26379"}, nil, nil},
		{"redis sentinel tls files", []string{"-redis-url=rediss-sentinel://s1:26379/0?master_name=m", "-redis-ca=ca.pem"}, nil, nil},
		{"redis sentinel url without tls for the files", []string{"-redis-url=redis-sentinel://s1:26379/0?master_name=m", "-redis-ca=ca.pem"}, nil, []string{
			"-redis-ca (ATODENE_WORKER_REDIS_CA): needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url"}},
		{"redis cluster url", []string{"-redis-url=redis-cluster://:pw@n1:7000?addr=n2:7000&addr=n3:7000"}, nil, nil},
		{"redis cluster tls files", []string{"-redis-url=rediss-cluster://n1:7000?addr=n2:7000", "-redis-ca=ca.pem"}, nil, nil},
		{"redis cluster url without tls for the files", []string{"-redis-url=redis-cluster://n1:7000", "-redis-ca=ca.pem"}, nil, []string{
			"-redis-ca (ATODENE_WORKER_REDIS_CA): needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url"}},
		{"redis wait replicas", []string{"-redis-wait-replicas=two"}, nil, []string{`invalid value "two" for flag -redis-wait-replicas: "two": want auto or a number of replicas from 0`}},
		{"redis wait timeout", []string{"-redis-wait-timeout=0s"}, nil, []string{"-redis-wait-timeout (ATODENE_WORKER_REDIS_WAIT_TIMEOUT): 0s: must be positive"}},
		{"redis wait replicas with the embedded redis", []string{"-embedded", "-redis-wait-replicas=1"}, map[string]string{"ATODENE_WORKER_NATS_URL": "", "ATODENE_WORKER_REDIS_URL": ""}, []string{
			"-redis-wait-replicas (ATODENE_WORKER_REDIS_WAIT_REPLICAS): 1: the in-process Redis has no replicas"}},
		{"redis wait timeout under a millisecond", []string{"-redis-wait-timeout=500us"}, nil, []string{"-redis-wait-timeout (ATODENE_WORKER_REDIS_WAIT_TIMEOUT): 500µs: want 1ms to 2s"}},
		{"redis wait timeout past the read timeout", []string{"-redis-wait-timeout=5s"}, nil, []string{"-redis-wait-timeout (ATODENE_WORKER_REDIS_WAIT_TIMEOUT): 5s: want 1ms to 2s"}},
		{"redis url", []string{"-redis-url=localhost:6379"}, nil, []string{`-redis-url (ATODENE_WORKER_REDIS_URL): want redis://host:port or rediss://host:port or redis-sentinel://host:port or rediss-sentinel://host:port or redis-cluster://host:port or rediss-cluster://host:port (the value is not quoted`}},
		{"redis url unparsable", []string{"-redis-url=redis://:hunter2@[::1"}, nil, []string{"-redis-url (ATODENE_WORKER_REDIS_URL): not a URL"}},
		{"redis url password with a slash", []string{"-redis-url=redis://default:2024/hunter2@r:6379/0"}, nil, []string{"-redis-url (ATODENE_WORKER_REDIS_URL): the URL has an '@' after its host"}},
		{"nats url password with a question mark", []string{"-nats-url=nats://u:4222?hunter2@a:4222"}, nil, []string{"-nats-url (ATODENE_WORKER_NATS_URL): the URL has an '@' after its host"}},
		{"redis prefix with a hash tag", []string{"-redis-prefix={a}:"}, nil, []string{"-redis-prefix (ATODENE_WORKER_REDIS_PREFIX): \"{a}:\": want no braces"}},
		{"demo on real servers", []string{"-embedded", "-demo"}, nil, []string{
			"-demo (ATODENE_WORKER_DEMO): runs on in-process servers of its own: it takes no -nats-url or -redis-url"}},
		{"embedded redis with a nats url", []string{"-embedded"}, map[string]string{"ATODENE_WORKER_REDIS_URL": ""}, []string{
			"-redis-url (ATODENE_WORKER_REDIS_URL): required with -nats-url: the in-process Redis forgets"}},
		{"embedded addresses", []string{"-embedded", "-embedded-nats-addr=4222", "-embedded-redis-addr=:x:"}, nil, []string{
			`-embedded-nats-addr (ATODENE_WORKER_EMBEDDED_NATS_ADDR): "4222": want host:port`,
			`-embedded-redis-addr (ATODENE_WORKER_EMBEDDED_REDIS_ADDR): ":x:": want host:port`}},
		{"embedded console off loopback", []string{"-embedded", "-embedded-console-addr=0.0.0.0:18090"}, nil, []string{
			`-embedded-console-addr (ATODENE_WORKER_EMBEDDED_CONSOLE_ADDR): "0.0.0.0:18090": want a loopback address`}},
		{"data dir needed when embedded", []string{"-embedded", "-data-dir="}, map[string]string{"ATODENE_WORKER_NATS_URL": ""}, []string{"-data-dir (ATODENE_WORKER_DATA_DIR): required for the embedded servers"}},
		{"data dir not needed with servers", []string{"-data-dir=", "-nats-url=nats://a:4222", "-redis-url=redis://b:6379/0"}, nil, nil},
		{"http addr", []string{"-http-addr=9090"}, nil, []string{`-http-addr (ATODENE_WORKER_HTTP_ADDR): "9090": want host:port`}},
		{"concurrency", []string{"-concurrency=0"}, nil, []string{"-concurrency (ATODENE_WORKER_CONCURRENCY): 0: must be at least 4"}},
		{"concurrency below a slot per consumer", []string{"-concurrency=3"}, nil, []string{"-concurrency (ATODENE_WORKER_CONCURRENCY): 3: must be at least 4: the orders, polls and advisories consumers each keep a slot"}},
		{"max deliveries", []string{"-max-deliveries=-1"}, nil, []string{"-max-deliveries (ATODENE_WORKER_MAX_DELIVERIES): -1: must be at least 1"}},
		{"ack wait not above provider timeout", []string{"-ack-wait=30s"}, nil, []string{
			"-ack-wait (ATODENE_WORKER_ACK_WAIT): 30s must exceed -provider-timeout 30s"}},
		{"zero provider timeout", []string{"-provider-timeout=0"}, nil, []string{"-provider-timeout (ATODENE_WORKER_PROVIDER_TIMEOUT): 0s: must be positive"}},
		{"park limit beyond the event records", []string{"-park-limit=400h"}, nil, []string{"-park-limit (ATODENE_WORKER_PARK_LIMIT): 400h0m0s: must be at most 360h0m0s"}},
		{"retention shorter than the event records", []string{"-retention=240h"}, nil, []string{"-retention (ATODENE_WORKER_RETENTION): 240h0m0s: must be at least 720h0m0s: the records of processed events are kept 720h0m0s"}},
		{"retention shorter than the dead letters", nil, map[string]string{"ATODENE_WORKER_RETENTION": "800h", "ATODENE_WORKER_DLQ_RETENTION": "900h"}, []string{"-retention (ATODENE_WORKER_RETENTION): 800h0m0s: must be at least 900h0m0s: -dlq-retention is 900h0m0s"}},
		{"retention not positive", []string{"-retention=0s"}, nil, []string{"-retention (ATODENE_WORKER_RETENTION): 0s: must be positive"}},
		{"poll schedule", []string{"-poll-first-delay=10m", "-poll-max-interval=5m", "-poll-deadline=10m"}, nil, []string{
			"-poll-max-interval (ATODENE_WORKER_POLL_MAX_INTERVAL): 5m0s is less than -poll-first-delay 10m0s",
			"-poll-deadline (ATODENE_WORKER_POLL_DEADLINE): 10m0s must exceed -poll-first-delay 10m0s"}},
		{"negative durations", []string{"-shutdown-grace=-1s", "-dlq-retention=0"}, nil, []string{
			"-shutdown-grace (ATODENE_WORKER_SHUTDOWN_GRACE): -1s: must be positive",
			"-dlq-retention (ATODENE_WORKER_DLQ_RETENTION): 0s: must be positive"}},
		{"negative handoff", []string{"-poll-handoff-ahead=-1s"}, nil, []string{"-poll-handoff-ahead (ATODENE_WORKER_POLL_HANDOFF_AHEAD): -1s: must not be negative (0 holds no re-check)"}},
		{"duplicate window too short", []string{"-duplicate-window=1m"}, nil, []string{"-duplicate-window (ATODENE_WORKER_DUPLICATE_WINDOW): 1m0s: must be at least 2m0s"}},
		{"duplicate window beyond retention", []string{"-duplicate-window=2h", "-orders-retention=1h"}, nil, []string{
			"-duplicate-window (ATODENE_WORKER_DUPLICATE_WINDOW): 2h0m0s exceeds -orders-retention 1h0m0s"}},
		{"log level beyond error", []string{"-log-level=fatal"}, nil, []string{"-log-level (ATODENE_WORKER_LOG_LEVEL): fatal: want debug, info, warn or error"}},
		{"stream names", []string{"-orders-stream=", "-results-stream=OUT.1", "-dlq-stream=RESULTS2", "-results-stream=RESULTS2"}, nil, []string{
			"-orders-stream (ATODENE_WORKER_ORDERS_STREAM): required",
			`-dlq-stream (ATODENE_WORKER_DLQ_STREAM): "RESULTS2" is also -results-stream`}},
		{"stream name characters", []string{"-dlq-stream=dead letters"}, nil, []string{`-dlq-stream (ATODENE_WORKER_DLQ_STREAM): "dead letters": a stream name cannot contain`}},
		{"bad env values", nil, map[string]string{"ATODENE_WORKER_ACK_WAIT": "two minutes", "ATODENE_WORKER_CONCURRENCY": "-3", "ATODENE_WORKER_LOG_LEVEL": "loud"}, []string{
			`invalid value "two minutes" for ATODENE_WORKER_ACK_WAIT: parse error`, // in flag order
			`invalid value "loud" for ATODENE_WORKER_LOG_LEVEL: unrecognized level: "loud"`,
			"-concurrency (ATODENE_WORKER_CONCURRENCY): -3: must be at least 4"}},
		{"unexpected argument", []string{"serve"}, nil, []string{`unexpected argument "serve"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := maps.Clone(servers)
			maps.Copy(env, tt.env)
			_, err := ParseSettings(tt.args, getenv(env), io.Discard)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseSettings: %v", err)
				}
				return
			}
			checkProblems(t, err, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes a password: %v", err)
			}
		})
	}
}

func TestParseSettingsHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := ParseSettings([]string{"-h"}, getenv(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ParseSettings(-h) = %v, want flag.ErrHelp", err)
	}
	// Every setting is listed with its variable; the defaults that are not zero values too.
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	s := DefaultSettings()
	s.bind(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name+" ") && !strings.Contains(out.String(), "-"+f.Name+"\n") {
			t.Errorf("-h does not list -%s", f.Name)
		}
		if !strings.Contains(out.String(), "[$"+EnvName(f.Name)+"]") {
			t.Errorf("-h does not name %s", EnvName(f.Name))
		}
	})
	for _, def := range []string{`(default "shops.yaml")`, "(default 512)", "(default 336h0m0s)", `(default "127.0.0.1:9090")`, "info (the default)"} {
		if !strings.Contains(out.String(), def) {
			t.Errorf("-h does not show %s", def)
		}
	}
}

func TestParseSettingsUnknownFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := ParseSettings([]string{"-concurency=5"}, getenv(nil), &out)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -concurency") {
		t.Fatalf("ParseSettings(-concurency) = %v, want an unknown-flag error", err)
	}
	if out.Len() != 0 {
		t.Errorf("ParseSettings printed %q for an unknown flag; want the error returned only", out.String())
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	if got := EnvName("poll-max-interval"); got != "ATODENE_WORKER_POLL_MAX_INTERVAL" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestSettingsRedacted(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.NATSURL = "nats://a:4222, nats://u:hunter2@b:4222"
	s.RedisURL = "redis://:hunter2@r:6379/0"
	r := s.Redacted()
	if r.NATSURL != "nats://a:4222,nats://xxxxx@b:4222" || r.RedisURL != "redis://xxxxx@r:6379/0" {
		t.Errorf("Redacted() URLs = %q, %q", r.NATSURL, r.RedisURL)
	}
	if s.RedisURL != "redis://:hunter2@r:6379/0" {
		t.Error("Redacted changed the original")
	}
	if (Settings{RedisURL: "redis://:pw@[::1"}).Redacted().RedisURL != "xxxxx" {
		t.Error("an unparsable URL is not masked whole")
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, s)
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "r:6379") {
			t.Errorf("Sprintf(%q) = %s; want the URLs with passwords redacted", verb, out)
		}
	}
}

func TestRequireServers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		s    Settings
		want []string
	}{
		{"none", Settings{}, []string{
			"-nats-url (ATODENE_WORKER_NATS_URL): required (or -embedded, to run an in-process NATS server)",
			"-redis-url (ATODENE_WORKER_REDIS_URL): required (or -embedded, to run an in-process Redis-protocol server)"}},
		{"no redis", Settings{NATSURL: "nats://n:4222"}, []string{"-redis-url (ATODENE_WORKER_REDIS_URL): required"}},
		{"both", Settings{NATSURL: "nats://n:4222", RedisURL: "redis://r:6379"}, nil},
		{"embedded", Settings{Embedded: true}, nil},
	} {
		err := tt.s.RequireServers()
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		checkProblems(t, err, tt.want)
	}
}

// TestHandoffOn: -poll-handoff-ahead holds re-checks; by default none is.
func TestHandoffOn(t *testing.T) {
	s, err := ParseSettings([]string{"-poll-handoff-ahead=10s"}, getenv(servers), io.Discard)
	if err != nil || s.PollHandoffAhead != 10*time.Second || DefaultSettings().PollHandoffAhead != 0 {
		t.Fatalf("-poll-handoff-ahead=10s: %v, %v (default %v); want 10s (default 0s)", s.PollHandoffAhead, err, DefaultSettings().PollHandoffAhead)
	}
}
