package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/sinks"
)

// Limits of an inbox page.
const (
	// DefaultInboxLimit is the page size when a request gives no limit.
	DefaultInboxLimit = 20
	// MaxInboxLimit bounds the page size.
	MaxInboxLimit = 100
)

// inboxRoutes registers the station-message (站内信) inbox routes. They
// answer 503 when the server has no Config.Inbox.
func (s *Server) inboxRoutes() {
	s.mux.HandleFunc("GET /v1/users/{user}/inbox", s.inboxPage)
	s.mux.HandleFunc("GET /v1/users/{user}/inbox/unread-count", s.inboxUnread)
	s.mux.HandleFunc("POST /v1/users/{user}/inbox/{message}/read", s.inboxRead)
	s.mux.HandleFunc("POST /v1/users/{user}/inbox/read-all", s.inboxReadAll)
}

// InboxResponse answers GET /v1/users/{user}/inbox: one page of the
// user's messages, newest first. Next, when present, is the after of the
// next page; a response without it is the last page.
type InboxResponse struct {
	UserID   string               `json:"user_id"`
	Messages []sinks.InboxMessage `json:"messages"`
	Next     string               `json:"next,omitempty"`
}

// UnreadResponse answers GET /v1/users/{user}/inbox/unread-count.
type UnreadResponse struct {
	UserID string `json:"user_id"`
	Unread int64  `json:"unread"`
}

// ReadResponse answers POST /v1/users/{user}/inbox/{message}/read: when
// the message was read (the first time, if it already was).
type ReadResponse struct {
	UserID    string    `json:"user_id"`
	MessageID string    `json:"message_id"`
	ReadAt    time.Time `json:"read_at"`
}

// ReadAllResponse answers POST /v1/users/{user}/inbox/read-all: how many
// messages it marked read.
type ReadAllResponse struct {
	UserID string `json:"user_id"`
	Marked int64  `json:"marked"`
}

// inboxQuery is a checked page request.
type inboxQuery struct {
	after sinks.InboxCursor
	limit int
}

// parseInboxQuery checks the after and limit parameters of an inbox page.
func parseInboxQuery(q url.Values) (inboxQuery, error) {
	out := inboxQuery{limit: DefaultInboxLimit}
	if len(q["after"]) > 1 || len(q["limit"]) > 1 {
		return inboxQuery{}, errors.New("give after and limit at most once")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxInboxLimit {
			return inboxQuery{}, fmt.Errorf("limit must be an integer from 1 to %d, got %.20q", MaxInboxLimit, v)
		}
		out.limit = n
	}
	c, err := sinks.ParseInboxCursor(q.Get("after"))
	if err != nil {
		return inboxQuery{}, fmt.Errorf("after must be the next of a previous page: %v", err)
	}
	out.after = c
	return out, nil
}

// inboxUser checks the user and that the server has an inbox store.
func (s *Server) inboxUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	if s.cfg.Inbox == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "station messages are not configured on this server"})
		return "", false
	}
	return s.user(w, r)
}

func (s *Server) inboxUnavailable(w http.ResponseWriter, what, user string, err error) {
	s.cfg.Logger.Error(what, "user", user, "err", err)
	writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the inbox store is unavailable"})
}

func (s *Server) inboxPage(w http.ResponseWriter, r *http.Request) {
	user, ok := s.inboxUser(w, r)
	if !ok {
		return
	}
	q, err := parseInboxQuery(r.URL.Query())
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	page, err := s.cfg.Inbox.Inbox(r.Context(), user, q.after, q.limit)
	if err != nil {
		s.inboxUnavailable(w, "reading an inbox", user, err)
		return
	}
	resp := InboxResponse{UserID: user, Messages: page.Messages, Next: page.Next.String()}
	if resp.Messages == nil {
		resp.Messages = []sinks.InboxMessage{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) inboxUnread(w http.ResponseWriter, r *http.Request) {
	user, ok := s.inboxUser(w, r)
	if !ok {
		return
	}
	n, err := s.cfg.Inbox.UnreadCount(r.Context(), user)
	if err != nil {
		s.inboxUnavailable(w, "counting unread messages", user, err)
		return
	}
	writeJSON(w, http.StatusOK, UnreadResponse{UserID: user, Unread: n})
}

func (s *Server) inboxRead(w http.ResponseWriter, r *http.Request) {
	user, ok := s.inboxUser(w, r)
	if !ok {
		return
	}
	msg := r.PathValue("message")
	if !sinks.ValidMessageID(msg) {
		badRequest(w, "message id %.64q is not a station message id", msg)
		return
	}
	at, err := s.cfg.Inbox.MarkRead(r.Context(), user, msg)
	switch {
	case errors.Is(err, sinks.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("message %s is not in the inbox of %s", msg, user)})
		return
	case err != nil:
		s.inboxUnavailable(w, "marking a message read", user, err)
		return
	}
	writeJSON(w, http.StatusOK, ReadResponse{UserID: user, MessageID: msg, ReadAt: at.UTC()})
}

func (s *Server) inboxReadAll(w http.ResponseWriter, r *http.Request) {
	user, ok := s.inboxUser(w, r)
	if !ok {
		return
	}
	n, err := s.cfg.Inbox.MarkAllRead(r.Context(), user)
	if err != nil {
		s.inboxUnavailable(w, "marking messages read", user, err)
		return
	}
	writeJSON(w, http.StatusOK, ReadAllResponse{UserID: user, Marked: n})
}
