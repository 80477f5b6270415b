package metrics

import (
	"net/http"
	"strconv"
	"time"
)

// RouteUnmatched is the route label of a request no pattern matched.
const RouteUnmatched = "unmatched"

// HTTP wraps a handler built on an http.ServeMux and counts its requests
// per route pattern (the mux's, e.g. "GET /v1/users/{user}/coupons", never
// the path: user ids stay out of the labels) and status code, and observes
// their latency. server names the server in the labels (api, gateway).
func (m *Metrics) HTTP(server string, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		// ServeMux sets r.Pattern on the request it was handed.
		route := r.Pattern
		if route == "" {
			route = RouteUnmatched
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.httpRequests.WithLabelValues(server, route, strconv.Itoa(code)).Inc()
		m.httpDuration.WithLabelValues(server, route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
