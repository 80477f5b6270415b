package schemas

import "time"

// Station message (站内信) event types.
const (
	TypeStationMessagePublished = "station.message.published"
	TypeStationMessageWithdrawn = "station.message.withdrawn"
)

// Audiences of a station message, and the key of a message to all users.
const (
	// AudienceAll sends a message to every user: it is stored once and
	// reaches each user's inbox when the user next reads it.
	AudienceAll = "all"
	// AudienceUser sends a message to the one user of its user_id.
	AudienceUser = "user"
	// StationKeyAll is the key of the events of a message to all users;
	// a message to one user is keyed by its user_id.
	StationKeyAll = "all"
)

// StationMessagePublished is a station message to every user or to one
// user (station.message.published v1).
type StationMessagePublished struct {
	MessageID string `json:"message_id"`
	// Audience is AudienceAll or AudienceUser.
	Audience string `json:"audience"`
	// UserID is the recipient of a message to one user; empty otherwise.
	UserID string `json:"user_id,omitempty"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	Link   string `json:"link,omitempty"`
	// PublishedAt is when the message shows in inboxes.
	PublishedAt time.Time `json:"published_at"`
	// ExpiresAt is when it leaves them; zero: never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (StationMessagePublished) EventType() string { return TypeStationMessagePublished }
func (StationMessagePublished) EventVersion() int { return 1 }
func (m StationMessagePublished) PartitionKey() string {
	return stationKey(m.Audience, m.UserID)
}

// StationMessageWithdrawn withdraws a station message
// (station.message.withdrawn v1).
type StationMessageWithdrawn struct {
	MessageID   string    `json:"message_id"`
	Audience    string    `json:"audience"`
	UserID      string    `json:"user_id,omitempty"`
	WithdrawnAt time.Time `json:"withdrawn_at"`
}

func (StationMessageWithdrawn) EventType() string { return TypeStationMessageWithdrawn }
func (StationMessageWithdrawn) EventVersion() int { return 1 }
func (w StationMessageWithdrawn) PartitionKey() string {
	return stationKey(w.Audience, w.UserID)
}

func stationKey(audience, userID string) string {
	if audience == AudienceAll {
		return StationKeyAll
	}
	return userID
}

// keyRules check what a schema's x-promoflow-key cannot say, for the types
// whose key depends on another field. Decode runs them after the schema,
// both in the compiled checks and in the reference engine; field returns a
// payload string field, or "" when it is absent.
var keyRules = map[TypeVersion]func(key string, field func(string) string) error{
	{TypeStationMessagePublished, 1}: checkAudience,
	{TypeStationMessageWithdrawn, 1}: checkAudience,
	{TypeCrowdMembershipRecorded, 1}: checkCrowdDay,
	{TypeCrowdComputed, 1}:           checkCrowdDay,
	{TypeNotifyShardPlanned, 1}:      checkShardID,
}

// checkAudience requires user_id exactly when audience is user, and the
// key to be "all" for a message to all users and the user id otherwise.
// A message to all users that lost its audience would reach everyone, so
// the audience is explicit rather than implied by a missing user_id.
func checkAudience(key string, field func(string) string) error {
	user := field("user_id")
	switch field("audience") {
	case AudienceAll:
		if user != "" {
			return invalid(ReasonInvalidPayload, "user_id %q is set on a message to all users (audience all)", truncateString(user, 64))
		}
		if key != StationKeyAll {
			return invalid(ReasonKeyMismatch, "key %q of a message to all users is not %q", truncateString(key, 64), StationKeyAll)
		}
	case AudienceUser:
		if user == "" {
			return invalid(ReasonInvalidPayload, "a message to one user (audience user) needs user_id")
		}
		if key != user {
			return invalid(ReasonKeyMismatch, "key %q is not payload.user_id %q", truncateString(key, 64), truncateString(user, 64))
		}
	}
	return nil
}
