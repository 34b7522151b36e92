package redact

import "testing"

func TestURLs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:hunter2@a:4222", "nats://xxxxx@a:4222"},
		{"nats://s3cr3t-token@a:4222", "nats://xxxxx@a:4222"},
		{"nats://a:4222, nats://u:hunter2@b:4222,tls://tok@c:4443", "nats://a:4222,nats://xxxxx@b:4222,tls://xxxxx@c:4443"},
		{"redis://:hunter2@r:6379/0", "redis://xxxxx@r:6379/0"},
		{"rediss://default:hunter2@r:6380/0?protocol=3", "rediss://xxxxx@r:6380/0?protocol=3"},
		{"redis://r:6379/0?password=hunter2", "redis://r:6379/0?password=xxxxx"},
		{"redis://:pw@[::1", "xxxxx"},
		{"redis://r:6379/0?Auth_Token=t0k&db=1", "redis://r:6379/0?Auth_Token=xxxxx&db=1"},
		{"user:hunter2@host:4222", "xxxxx"},
		{"localhost:4222", "xxxxx"},
		{"redis:/hunter2", "xxxxx"},
	} {
		if got := URLs(tt.in); got != tt.want {
			t.Errorf("URLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
