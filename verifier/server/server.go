// Package server is zest's HTTP verifier service: Keylime-compatible routes
// (version, the stateless /verify/evidence endpoint, push-model attestation)
// plus health and Prometheus metrics. It holds no storage of its own; what
// must survive a restart goes through interfaces the caller provides, so
// this package does not depend on the archive.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// API versions, as Keylime's verifier reports them.
var (
	CurrentVersion    = "2.6"
	SupportedVersions = []string{"2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "3.0"}
)

// DefaultMaxBody bounds request bodies (HTTP 413 beyond it).
const DefaultMaxBody = 64 << 20

// Options configures a Server. Zero values are safe defaults.
type Options struct {
	// Evidence answers POST /v{2.x,3.0}/verify/evidence. Nil: the route
	// answers 501.
	Evidence EvidenceVerifier
	// Push serves the v3 push-model routes (NewPush). Nil: they answer 404.
	Push *Push
	// MaxBody bounds request bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// Logger receives one line per request error; nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Server is an http.Handler.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	metrics *Metrics
	log     *slog.Logger
}

// New builds a Server.
func New(opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), metrics: NewMetrics(), log: log}
	s.handle("/version", "GET", s.version)
	s.handle("/healthz", "GET", func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, http.StatusOK, "Success", map[string]any{"status": "ok"})
	})
	s.handle("/metrics", "GET", s.metrics.ServeHTTP)
	s.handle("/{ver}/verify/evidence", "POST", s.evidence)
	if opts.Push != nil {
		opts.Push.register(s)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found: "+r.URL.Path)
	})
	return s
}

// handle registers a route for one method; other methods get a 405
// envelope (ServeMux's own 405 is plain text).
func (s *Server) handle(pattern, method string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed: use "+method)
			return
		}
		h(w, r)
	})
}

// Metrics returns the server's metrics registry, so a caller can add its own
// series (e.g. pull-mode rounds) to the same /metrics page.
func (s *Server) Metrics() *Metrics { return s.metrics }

// ServeHTTP implements http.Handler: panics become a 500 envelope and the
// server keeps serving.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	rw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !rw.wrote {
				writeError(rw, http.StatusInternalServerError, "internal error")
			}
		}
		s.metrics.observeRequest(routeLabel(r), rw.status, s.opts.Now().Sub(start))
	}()
	s.mux.ServeHTTP(rw, r)
}

func routeLabel(r *http.Request) string {
	p := r.Pattern
	if p == "" {
		return "unmatched"
	}
	return p
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeEnvelope(w, http.StatusOK, "Success", map[string]any{
		"current_version":    CurrentVersion,
		"supported_versions": SupportedVersions,
	})
}

// apiVersion validates the {ver} path element ("v2.3" → "2.3").
func apiVersion(r *http.Request) (string, bool) {
	v, ok := strings.CutPrefix(r.PathValue("ver"), "v")
	if !ok {
		return "", false
	}
	for _, s := range SupportedVersions {
		if s == v {
			return v, true
		}
	}
	return "", false
}

// readJSONBody enforces the content type and the size limit. It writes the
// error response itself and returns ok=false on failure.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request, types ...string) ([]byte, bool) {
	if len(types) == 0 {
		types = []string{"application/json"}
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	okType := false
	for _, t := range types {
		if err == nil && mt == t {
			okType = true
		}
	}
	if !okType {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be %s, got %q", strings.Join(types, " or "), ct))
		return nil, false
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBody)
	// One allocation of the announced size (bounded by the limit) instead
	// of io.ReadAll's doubling: evidence bodies are megabytes.
	buf := make([]byte, 0, min(max(r.ContentLength, 0), s.opts.MaxBody)+1)
	err = nil
	for err == nil {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		var n int
		n, err = body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
	}
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", s.opts.MaxBody))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return nil, false
	}
	return buf, true
}

// writeEnvelope writes Keylime's response envelope.
func writeEnvelope(w http.ResponseWriter, code int, status string, results any) {
	if results == nil {
		results = map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Results any    `json:"results"`
	}{code, status, results})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeEnvelope(w, code, msg, map[string]any{})
}
