package lottery

import (
	"reflect"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

func TestParseSendDecision(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_123).UTC()
	for _, tc := range []struct {
		in      string
		want    SendOutcome
		wantErr bool
	}{
		{in: "s|1800000000123|bob", want: SendOutcome{Matched: true, ReceiverID: "bob", At: at}},
		{in: "s|1800000000123|a|b", want: SendOutcome{Matched: true, ReceiverID: "a|b", At: at}},
		{in: "r|1800000000123|already_sent", want: SendOutcome{Reason: schemas.RejectAlreadySent, At: at}},
		{in: "r|1800000000123|ended", want: SendOutcome{Reason: schemas.RejectEnded, At: at}},
		{in: "", wantErr: true},
		{in: "s|1800000000123", wantErr: true},
		{in: "s||bob", wantErr: true},
		{in: "s|12x|bob", wantErr: true},
		{in: "r|1800000000123|", wantErr: true},
		{in: "x|1800000000123|bob", wantErr: true},
		{in: "m|1800000000123|6:active0:0:0:0:", wantErr: true},
		{in: "g|1|1800000000123", wantErr: true},
	} {
		got, err := parseSendDecision(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseSendDecision(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("parseSendDecision(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseMemberDecision(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_000).UTC()
	for _, tc := range []struct {
		in      string
		want    MemberOutcome
		wantErr bool
	}{
		{
			in:   "m|1800000000000|6:active5:Alice11:HR, floor 23:im10:",
			want: MemberOutcome{Status: schemas.MemberActive, Name: "Alice", Note: "HR, floor 2", ImportID: "im1", At: at},
		},
		{
			// Names and notes may hold the separators themselves.
			in:   "m|1800000000000|7:removed3:a:b4:x|\x1fy0:13:member_locked",
			want: MemberOutcome{Status: schemas.MemberRemoved, Name: "a:b", Note: "x|\x1fy", Refused: true, Reason: RefuseMemberLocked, At: at},
		},
		{
			in:   "m|1800000000000|7:removed0:0:0:12:not_a_member",
			want: MemberOutcome{Status: schemas.MemberRemoved, Refused: true, Reason: schemas.RejectNotAMember, At: at},
		},
		{in: "m|1800000000000|6:active0:0:0:", wantErr: true},        // four netstrings
		{in: "m|1800000000000|6:active0:0:0:0:x", wantErr: true},     // trailing byte
		{in: "m|1800000000000|6:active0:0:0:9:", wantErr: true},      // length past the end
		{in: "m|1800000000000|6:active0:0:0:-1:", wantErr: true},     // negative length
		{in: "m|1800000000000|6:active0:0:0:+0:", wantErr: true},     // sign
		{in: "m|1800000000000|6:active0:0:0::", wantErr: true},       // empty length
		{in: "m|1800000000000|6active0:0:0:0:", wantErr: true},       // no colon where due
		{in: "m|1800000000000|99999999999:x0:0:0:0:", wantErr: true}, // absurd length
		{in: "m|1800000000000|4:gone0:0:0:0:", wantErr: true},        // unknown status
		{in: "s|1800000000000|6:active0:0:0:0:", wantErr: true},      // a send decision
		{in: "m|soon|6:active0:0:0:0:", wantErr: true},               // bad time
		{in: "m", wantErr: true},
	} {
		got, err := parseMemberDecision(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseMemberDecision(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("parseMemberDecision(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestGiftDecodeNetstrings(t *testing.T) {
	for _, tc := range []struct {
		in      string
		n       int
		want    []string
		wantErr bool
	}{
		{in: "", n: 0, want: []string{}},
		{in: "0:", n: 1, want: []string{""}},
		{in: "3:abc2:de", n: 2, want: []string{"abc", "de"}},
		{in: "3:a:c", n: 1, want: []string{"a:c"}},
		{in: "3:abc", n: 2, wantErr: true},
		{in: "3:ab", n: 1, wantErr: true},
		{in: "x:ab", n: 1, wantErr: true},
		{in: ":", n: 1, wantErr: true},
		{in: "1:a", n: 0, wantErr: true},
	} {
		got, err := decodeNetstrings(tc.in, tc.n)
		if (err != nil) != tc.wantErr {
			t.Errorf("decodeNetstrings(%q, %d) error = %v, want error %v", tc.in, tc.n, err, tc.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("decodeNetstrings(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestGiftExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name     string
		expireAt time.Time
		want     int64
	}{
		{"zero means never", time.Time{}, 0},
		{"future kept", now.Add(48 * time.Hour), now.Add(48 * time.Hour).Unix()},
		{"now raised", now, now.Add(time.Hour).Unix()},
		{"past raised", now.Add(-time.Hour), now.Add(time.Hour).Unix()},
	} {
		if got := giftExpiry(now, tc.expireAt, time.Hour); got != tc.want {
			t.Errorf("%s: giftExpiry = %d, want %d", tc.name, got, tc.want)
		}
	}
}
