package sandbox

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// BasePath is where the five operations are served: the base URL is http://host:port/api/.
const BasePath = "/api/"

// maxBodyBytes bounds a request body; real requests are a few kilobytes.
const maxBodyBytes = 1 << 20

// Server is the ATODENE sandbox, an http.Handler. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *zap.Logger
	mux      *http.ServeMux
	rand     *lockedRand
	closeCtx context.Context // done once Close was called
	close    context.CancelFunc
	closing  <-chan struct{} // closeCtx.Done()

	// mu guards everything below. One lock is enough: each operation is microseconds of work.
	mu     sync.Mutex
	store  *store
	ids    *idGenerator
	shops  map[string]Shop
	faults Faults
	stats  *Stats
}

// New returns a sandbox configured by cfg. It fails only when cfg is invalid: a negative delay, or a
// shop that is incomplete or configured twice.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	closeCtx, closeFn := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		mux:      http.NewServeMux(),
		rand:     newLockedRand(cfg.Seed),
		closeCtx: closeCtx,
		close:    closeFn,
		closing:  closeCtx.Done(),
		store:    newStore(),
		shops:    make(map[string]Shop, len(cfg.Shops)),
		stats:    newStats(),
	}
	s.ids = newIDGenerator(s.rand)
	for _, sh := range cfg.Shops {
		s.shops[sh.ShopCode] = sh
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	ops := map[string]func([]byte) outcome{
		opRegister: s.register,
		opAuthori:  s.getAuthori,
		opShipment: s.shipment,
		opModify:   s.modify,
		opInvoice:  s.invoice,
	}
	for name, op := range ops {
		s.mux.Handle("POST "+BasePath+name+".do", s.operation(name, op))
	}
	s.mux.HandleFunc("GET /sandbox/transactions", s.listTransactions)
	s.mux.HandleFunc("POST /sandbox/transactions/{id}/decision", s.decide)
	s.mux.HandleFunc("GET /sandbox/stats", s.getStats)
	s.mux.HandleFunc("GET /sandbox/faults", s.getFaults)
	s.mux.HandleFunc("PUT /sandbox/faults", s.putFaults)
	s.mux.HandleFunc("POST /sandbox/reset", s.reset)
}

// ServeHTTP serves the five operations under BasePath and the admin API under /sandbox/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases every handler held by a timeout fault or a delay, or still reading its request body
// (a client that stalls mid-body), and makes later ones return at once. The held requests are dropped without an answer; a request that arrives later is served
// without the latency and slow delays (a timeout fault still drops it, at once). Call it before (or register it with
// http.Server.RegisterOnShutdown for) http.Server.Shutdown, which otherwise waits for them forever.
// The Server keeps serving after Close, without delays.
func (s *Server) Close() {
	s.close()
}

// closed reports whether Close was called.
func (s *Server) closed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// outcome is an operation's answer before faults are applied.
type outcome struct {
	resp *responseXML
	txID string // the transaction the request was about, for the log
	slow bool   // the buyer asked for the slow delay
}

// operation wraps one of the five operations with fault injection, the slow delay, stats and logging.
// The body is read first: net/http notices a client hanging up only once the body has been read, and
// a request abandoned during the added latency must not be processed.
func (s *Server) operation(name string, op func([]byte) outcome) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, readErr := s.readBody(w, r)
		if readErr != nil && s.closed() {
			s.finish(name, 0, faultNone, start, outcome{})
			panic(http.ErrAbortHandler) // Close cut the read of a stalled body
		}
		s.mu.Lock()
		faults := s.faults
		s.mu.Unlock()
		f, latency := faults.draw(s.rand)
		if s.closed() {
			latency = 0 // after Close the Server serves without delays
		}
		if !s.sleep(r.Context(), latency) {
			s.finish(name, 0, f, start, outcome{})
			panic(http.ErrAbortHandler) // the client is gone or the server is closing
		}
		if f == faultError {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			s.finish(name, http.StatusInternalServerError, f, start, outcome{})
			return
		}
		out := outcome{resp: ngResponse(errRequest)}
		if readErr == nil {
			out = op(body)
		}
		if out.slow {
			s.sleep(r.Context(), s.cfg.SlowDelay)
		}
		s.deliver(w, r, name, f, start, out)
	})
}

// readBody reads the request body. A Close during the read ends it at once (a read deadline of now),
// so that a client stalled mid-body cannot hold http.Server.Shutdown; a request that starts after
// Close is read as usual, since the Server keeps serving.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if !s.closed() {
		rc := http.NewResponseController(w)
		stop := context.AfterFunc(s.closeCtx, func() { _ = rc.SetReadDeadline(time.Now()) })
		defer stop()
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
}

// deliver sends the answer, unless a fault says otherwise. A timeout fault holds the request, already
// processed, until the client gives up or the server closes, then drops the connection without a
// byte: the client cannot tell whether the request took effect, as with a real lost answer.
func (s *Server) deliver(w http.ResponseWriter, r *http.Request, name string, f fault, start time.Time, out outcome) {
	body := encodeResponse(out.resp)
	if f == faultTimeout {
		s.finish(name, 0, f, start, out)
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		panic(http.ErrAbortHandler)
	}
	if f == faultGarbage {
		body = garble(body)
	}
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		s.log.Debug("writing response", zap.String("operation", name), zap.Error(err))
	}
	s.finish(name, http.StatusOK, f, start, out)
}

// finish records stats and logs the request. status 0 means no answer was sent. Only identifiers and
// codes are logged: never linkInfo, never buyer data.
func (s *Server) finish(name string, status int, f fault, start time.Time, out outcome) {
	var result string
	if out.resp != nil {
		result = out.resp.Result
	}
	s.mu.Lock()
	s.stats.record(name, status, result, f)
	s.mu.Unlock()
	fields := []zap.Field{
		zap.String("operation", name),
		zap.Int("status", status),
		zap.Duration("duration", time.Since(start)),
	}
	if result != "" {
		fields = append(fields, zap.String("result", result))
	}
	if out.txID != "" {
		fields = append(fields, zap.String("transaction_id", out.txID))
	}
	if f != faultNone {
		fields = append(fields, zap.String("fault", string(f)))
	}
	if result == "NG" {
		fields = append(fields, zap.Strings("errors", errorSummary(out.resp.Errors.Error)))
	}
	s.log.Info("request", fields...)
}

// errorSummary keeps errorPoint and errorCode, which name fields but carry none of their values.
func errorSummary(errs []errorXML) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Point + ":" + e.Code
	}
	return out
}
