package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/promoflow/promoflow/sinks"
)

// Limits of a page of crowd members.
const (
	// DefaultCrowdLimit is the page size when a request gives no limit.
	DefaultCrowdLimit = 1000
	// MaxCrowdLimit bounds the page size.
	MaxCrowdLimit = 10000
)

// crowdRoutes registers the crowd routes, so that other services read
// crowds through the API and never the tables (whose layout changes every
// day). They answer 503 when the server has no Config.Crowds.
func (s *Server) crowdRoutes() {
	s.mux.HandleFunc("GET /v1/crowds/{crowd}", s.crowdInfo)
	s.mux.HandleFunc("GET /v1/crowds/{crowd}/members", s.crowdMembers)
	s.mux.HandleFunc("GET /v1/crowds/{crowd}/members/{user}", s.crowdMember)
}

// CrowdMembersResponse answers GET /v1/crowds/{crowd}/members: one page of
// member ids in ascending order. Next, when present, is the after of the
// next page; a response without it is the last page.
type CrowdMembersResponse struct {
	sinks.Crowd
	Members []string `json:"members"`
	Next    string   `json:"next,omitempty"`
}

// CrowdMemberResponse answers GET /v1/crowds/{crowd}/members/{user}.
type CrowdMemberResponse struct {
	CrowdID string `json:"crowd_id"`
	UserID  string `json:"user_id"`
	Member  bool   `json:"member"`
}

// crowdQuery is a checked page request.
type crowdQuery struct {
	after string
	limit int
}

// parseCrowdQuery checks the after and limit parameters of a members page.
func parseCrowdQuery(q url.Values) (crowdQuery, error) {
	out := crowdQuery{limit: DefaultCrowdLimit}
	if len(q["after"]) > 1 || len(q["limit"]) > 1 {
		return crowdQuery{}, errors.New("give after and limit at most once")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxCrowdLimit {
			return crowdQuery{}, fmt.Errorf("limit must be an integer from 1 to %d, got %.20q", MaxCrowdLimit, v)
		}
		out.limit = n
	}
	if v := q.Get("after"); v != "" {
		if !userIDPattern.MatchString(v) {
			return crowdQuery{}, fmt.Errorf("after must be a user id (the next of a previous page), got %.64q", v)
		}
		out.after = v
	}
	return out, nil
}

// crowdID checks the crowd id and that the server has a crowd store.
func (s *Server) crowdID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if s.cfg.Crowds == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "crowds are not configured on this server"})
		return "", false
	}
	c := r.PathValue("crowd")
	if !userIDPattern.MatchString(c) {
		badRequest(w, "crowd id %.64q does not match %s", c, userIDPattern)
		return "", false
	}
	return c, true
}

// crowdError answers a store error: 404 for an unknown crowd (or a routine
// crowd not computed yet), 503 otherwise.
func (s *Server) crowdError(w http.ResponseWriter, what, crowd string, err error) {
	if errors.Is(err, sinks.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
		return
	}
	s.cfg.Logger.Error(what, "crowd", crowd, "err", err)
	writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the crowd store is unavailable"})
}

func (s *Server) crowdInfo(w http.ResponseWriter, r *http.Request) {
	crowd, ok := s.crowdID(w, r)
	if !ok {
		return
	}
	c, err := s.cfg.Crowds.Crowd(r.Context(), crowd)
	if err != nil {
		s.crowdError(w, "reading a crowd", crowd, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) crowdMembers(w http.ResponseWriter, r *http.Request) {
	crowd, ok := s.crowdID(w, r)
	if !ok {
		return
	}
	q, err := parseCrowdQuery(r.URL.Query())
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	c, err := s.cfg.Crowds.Crowd(r.Context(), crowd)
	if err != nil {
		s.crowdError(w, "reading a crowd", crowd, err)
		return
	}
	// One more than the page tells whether another page follows.
	members, err := s.cfg.Crowds.Members(r.Context(), crowd, q.after, q.limit+1)
	if err != nil {
		s.crowdError(w, "reading crowd members", crowd, err)
		return
	}
	resp := CrowdMembersResponse{Crowd: c, Members: members}
	if len(members) > q.limit {
		resp.Members = members[:q.limit]
		resp.Next = resp.Members[q.limit-1]
	}
	if resp.Members == nil {
		resp.Members = []string{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) crowdMember(w http.ResponseWriter, r *http.Request) {
	crowd, ok := s.crowdID(w, r)
	if !ok {
		return
	}
	user, ok := s.user(w, r)
	if !ok {
		return
	}
	in, err := s.cfg.Crowds.IsMember(r.Context(), crowd, user)
	if err != nil {
		s.crowdError(w, "reading a crowd member", crowd, err)
		return
	}
	writeJSON(w, http.StatusOK, CrowdMemberResponse{CrowdID: crowd, UserID: user, Member: in})
}
