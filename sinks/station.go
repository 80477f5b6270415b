package sinks

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Inbox reads and updates users' station-message inboxes (站内信) in the
// system of record, for the HTTP API. A message to all users is stored
// once; a user's inbox receives it lazily, when the user next reads the
// inbox (Inbox, MarkRead, MarkAllRead), so users who never read cost
// nothing. UnreadCount never writes. Every call reads the user's one shard
// table and, for messages to all users, the table that stores them once.
// Times come back in UTC at the precision the store keeps (milliseconds).
type Inbox interface {
	// Inbox delivers the messages to all users published since the
	// user's last read, then returns one page of the user's visible
	// messages, newest first: those published before now (not scheduled
	// later), not expired, not withdrawn. after, when not zero, is the
	// Next of the previous page. limit is at least 1.
	Inbox(ctx context.Context, userID string, after InboxCursor, limit int) (InboxPage, error)
	// UnreadCount counts the user's visible unread messages, including the
	// messages to all users not yet delivered to the user's inbox, without
	// writing anything.
	UnreadCount(ctx context.Context, userID string) (int64, error)
	// MarkRead marks one message of the user's inbox read, delivering
	// pending messages first, and returns when it was read (the first
	// time, if it was already read). It returns an error wrapping
	// ErrNotFound when the message is not in the user's inbox (never sent
	// to the user, or not yet stored).
	MarkRead(ctx context.Context, userID, messageID string) (time.Time, error)
	// MarkAllRead marks every published message of the user's inbox read,
	// delivering pending messages first, and returns how many it marked.
	MarkAllRead(ctx context.Context, userID string) (int64, error)
}

// InboxMessage is one message of a user's inbox.
type InboxMessage struct {
	MessageID string `json:"message_id"`
	// Audience is schemas.AudienceAll or schemas.AudienceUser.
	Audience    string    `json:"audience"`
	Title       string    `json:"title"`
	Body        string    `json:"body"`
	Link        string    `json:"link,omitempty"`
	PublishedAt time.Time `json:"published_at"`
	// ExpiresAt is nil for a message that does not expire.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Read      bool       `json:"read"`
	// ReadAt is when the user read it; nil while unread.
	ReadAt *time.Time `json:"read_at,omitempty"`
}

// InboxPage is one page of an inbox, newest first.
type InboxPage struct {
	Messages []InboxMessage
	// Next, when not zero, continues after the last message of the page.
	Next InboxCursor
}

// InboxCursor is a position in an inbox's order: newest published_at
// first, then message id descending. The zero cursor is the start.
type InboxCursor struct {
	PublishedAt time.Time
	MessageID   string
}

// IsZero reports whether c is the start of the inbox.
func (c InboxCursor) IsZero() bool { return c.MessageID == "" }

// String encodes c for a URL: "<published_at in Unix milliseconds>.<message
// id>", or "" for the zero cursor. Clients treat it as opaque.
func (c InboxCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(c.PublishedAt.UnixMilli(), 10) + "." + c.MessageID
}

// ErrBadCursor is wrapped by ParseInboxCursor when a cursor is not one
// that InboxCursor.String makes.
var ErrBadCursor = errors.New("bad inbox cursor")

// messageID is the schemas' message_id pattern.
var messageID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// ValidMessageID reports whether id is a station message id as the
// schemas allow it.
func ValidMessageID(id string) bool { return messageID.MatchString(id) }

// maxCursorMillis is 9999-12-31T23:59:59.999Z, the last time a DATETIME holds.
const maxCursorMillis = 253402300799999

// ParseInboxCursor decodes what InboxCursor.String encodes; "" is the zero
// cursor.
func ParseInboxCursor(s string) (InboxCursor, error) {
	if s == "" {
		return InboxCursor{}, nil
	}
	ms, id, ok := strings.Cut(s, ".")
	if !ok || ms == "" || len(ms) > 15 || strings.Trim(ms, "0123456789") != "" || !ValidMessageID(id) {
		return InboxCursor{}, fmt.Errorf("%w %.80q", ErrBadCursor, s)
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n > maxCursorMillis {
		return InboxCursor{}, fmt.Errorf("%w %.80q", ErrBadCursor, s)
	}
	return InboxCursor{PublishedAt: time.UnixMilli(n).UTC(), MessageID: id}, nil
}
