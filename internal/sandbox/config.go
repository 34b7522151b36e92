package sandbox

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Shop is one merchant whose linkInfo the sandbox accepts.
type Shop struct {
	ShopCode     string // 加盟店コード
	LinkID       string // 接続先特定ID
	LinkPassword string // 連携パスワード
}

// DemoShop is the shop the sandbox accepts when Config.Shops is empty.
var DemoShop = Shop{ShopCode: "demo00000001", LinkID: "original00", LinkPassword: "demopass01"}

// NoDelay, given as ReviewDelay, HoldDelay or SlowDelay, means no delay at all: a zero delay means the
// default, so that the zero Config is usable. Other negative delays are invalid.
const NoDelay time.Duration = -1

// Config configures a Server. The zero value is usable; each field states its default.
type Config struct {
	// Shops are the merchants whose linkInfo is accepted. Default: DemoShop only.
	Shops []Shop

	// ReviewDelay is how long a review (審査中) lasts before its manual result appears. Default 30s;
	// NoDelay for none.
	ReviewDelay time.Duration

	// HoldDelay is how long a hold (保留) lasts before it turns NG. Default 60s; NoDelay for none.
	HoldDelay time.Duration

	// SlowDelay is added to every response about a buyer whose e-mail starts with "slow". Default 5s;
	// NoDelay for none.
	SlowDelay time.Duration

	// AuthorizationLifetime is how long a transaction's authorization lasts, counted from its last OK
	// decision (the registration or re-screening change that answered OK, or the moment a review
	// turned OK). From then on, a shipment report (deliveryType 1 or 2) and a change (updateTypeFlag
	// 2) of the transaction are refused with CodeAuthorizationExpired; a cancel, a shipment cancel,
	// getauthori.do and getinvoicedata.do still work. It is measured on Now. The real service's
	// limit is unknown; w2 Commerce re-authorizes 88 days after the last authorization
	// (docs/protocol.md#changes-and-cancels). Default 0: an authorization never expires.
	AuthorizationLifetime time.Duration

	// Now is the clock that review progress is measured with. Reviews advance lazily from it rather
	// than from timers, so tests move a fake clock instead of sleeping. Default time.Now.
	Now func() time.Time

	// Seed seeds the random source for faults and transaction IDs. Default 0: a seed from the clock.
	Seed int64

	// Logger gets one line per request, never with passwords or buyer data. Default zap.NewNop().
	Logger *zap.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Shops) == 0 {
		c.Shops = []Shop{DemoShop}
	}
	c.ReviewDelay = delayOrDefault(c.ReviewDelay, 30*time.Second)
	c.HoldDelay = delayOrDefault(c.HoldDelay, 60*time.Second)
	c.SlowDelay = delayOrDefault(c.SlowDelay, 5*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// delayOrDefault resolves a delay field: 0 is the default, NoDelay is none.
func delayOrDefault(d, def time.Duration) time.Duration {
	switch d {
	case 0:
		return def
	case NoDelay:
		return 0
	}
	return d
}

func (c Config) validate() error {
	if c.ReviewDelay < 0 || c.HoldDelay < 0 || c.SlowDelay < 0 {
		return errors.New("sandbox: delays must not be negative (NoDelay for none)")
	}
	if c.AuthorizationLifetime < 0 {
		return errors.New("sandbox: the authorization lifetime must not be negative (0: never expires)")
	}
	seen := make(map[string]bool, len(c.Shops))
	for i, s := range c.Shops {
		if s.ShopCode == "" || s.LinkID == "" || s.LinkPassword == "" {
			return fmt.Errorf("sandbox: shop %d: shopCode, linkId and linkPassword are all required", i+1)
		}
		if seen[s.ShopCode] {
			return fmt.Errorf("sandbox: shop %q is configured twice", s.ShopCode)
		}
		seen[s.ShopCode] = true
	}
	return nil
}
