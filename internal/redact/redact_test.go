package redact

import (
	"strings"
	"testing"
)

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
		{"redis-sentinel://s1:26379/0?master_name=m&addr=admin:hunter2@s2:26379", "redis-sentinel://s1:26379/0?addr=xxxxx%40s2%3A26379&master_name=m"},
	} {
		if got := URLs(tt.in); got != tt.want {
			t.Errorf("URLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	const raw = "redis-sentinel://sadmin:s3cret@s1:26379/hunter1?master_name=m&addr=admin:hunter2@s2:26379&pool_size=hunter3"
	for _, msg := range []string{
		"redis: unable to parse addr param: admin:hunter2@s2:26379",
		`redis: invalid database number: "hunter1"`,
		`redis: invalid pool_size number: strconv.Atoi: parsing "hunter3": invalid syntax`,
		"auth failed for sadmin:s3cret",
	} {
		got := Values(msg, raw)
		for _, secret := range []string{"hunter1", "hunter2", "hunter3", "s3cret"} {
			if strings.Contains(got, secret) {
				t.Errorf("Values(%q) = %q: %s is left", msg, got, secret)
			}
		}
		if !strings.Contains(got, "redis:") && !strings.Contains(got, "auth failed") {
			t.Errorf("Values(%q) = %q: the message is lost", msg, got)
		}
	}
}

// TestURLsPasswordWithSlashOrQuestionMark: a password holding '/', '?' or '#' (common in generated
// secrets: base64 has '/') not percent-encoded. When what precedes it looks like a port, the URL
// parses with a host, and the rest of the password lands in the path, the query or the fragment:
// such a URL is replaced whole, and Values quotes nothing of a message about it.
func TestURLsPasswordWithSlashOrQuestionMark(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, secret string }{
		{"redis://default:2024/Zx9+k@redis:6379/0", "Zx9+k"},
		{"nats://alice:4222/Qm8pL@nats:4222", "Qm8pL"},
		{"redis://:1234?Zx9k@redis:6379", "Zx9k"},
		{"redis://:1234?a=Zx9k@redis:6379", "Zx9k"},
		{"redis://default:2024#Zx9k@redis:6379/0", "Zx9k"},
		{"nats://a:4222, nats://u:2024/Zx9k@b:4222", "Zx9k"},
	} {
		if got := URLs(tt.in); strings.Contains(got, tt.secret) || strings.Contains(got, "2024") {
			t.Errorf("URLs(%q) = %q: the password's %q is printed", tt.in, got, tt.secret)
		}
		if got := Values("redis: unexpected option: "+tt.secret+"@redis:6379", tt.in); strings.Contains(got, tt.secret) {
			t.Errorf("Values(…, %q) = %q: the password's %q is quoted", tt.in, got, tt.secret)
		}
		if !Misplaced(tt.in) && !strings.Contains(tt.in, ",") {
			t.Errorf("Misplaced(%q) = false", tt.in)
		}
	}
	// An '@' where a URL may hold one is no sign of a misplaced password.
	for _, ok := range []string{
		"redis-sentinel://s1:26379/0?master_name=m&addr=admin:hunter2@s2:26379",
		"redis://r:6379/0?password=p@ss",
		"redis://u:p@r:6379/0",
	} {
		if Misplaced(ok) {
			t.Errorf("Misplaced(%q) = true", ok)
		}
	}
}
