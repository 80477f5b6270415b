package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// TestIntegrationStationMessagesEndToEnd runs station messages as
// docs/station-messages.md tells an operator to: send to all users and to
// one user from the CLI, let the sink-station stage store them, read the
// inbox over HTTP and from the CLI, withdraw one; a message keyed wrongly
// is dead-lettered by the stage, and the ClickHouse sink archives the rest.
func TestIntegrationStationMessagesEndToEnd(t *testing.T) {
	e := startCouponEnv(t, stageStation, stageClickHouse)
	ctx := testenv.Context(t, 3*time.Minute)
	cfgFile := filepath.Join(t.TempDir(), "promoflow.yaml")
	body := fmt.Sprintf("kafka:\n  brokers: [%s]\nmysql:\n  dsn: %q\n  database_prefix: %q\n  databases: 2\n  tables_per_database: 2\nlog:\n  level: error\n",
		strings.Join(e.cfg.Kafka.Brokers, ", "), testenv.MySQLDSN(), e.prefix)
	if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := runMain(append(args, "--config", cfgFile), &out, &errOut); code != 0 {
			t.Fatalf("promoflow %s exited %d:\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	out := run("station", "send", "--all", "--id", "d11", "--title", "Double 11 starts", "--body", "Coupons at 20:00", "--link", "/d11", "--expires", "72h")
	if !strings.Contains(out, "published message d11 to all users") {
		t.Fatalf("send printed %q", out)
	}
	run("station", "send", "--all", "--id", "notice", "--title", "Maintenance tonight", "--body", "")
	run("station", "send", "--user", "alice", "--id", "parcel", "--title", "Your parcel shipped", "--body", "Order 8812")
	// A message to all users keyed by a user (a client bug): refused by the
	// stage, never stored.
	bad := fmt.Sprintf(`{"event_id":"bad-1","type":"station.message.published","version":1,"app_id":"shop","occurred_at":%q,"key":"alice","payload":{"message_id":"bad","audience":"all","title":"x","body":"","published_at":%q}}`,
		time.Now().UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topicStation, Key: []byte("alice"), Value: []byte(bad)}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sink, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	st, err := sink.Station(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to store the messages", func() bool {
		n, err := st.UnreadCount(ctx, "alice")
		return err == nil && n == 3
	})

	srv, err := api.New(api.Config{Coupons: sink, Batches: coupon.NewBatches(), Inbox: st})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	get := func(path string, into any) {
		t.Helper()
		res, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, res.Status)
		}
		if err := json.NewDecoder(res.Body).Decode(into); err != nil {
			t.Fatal(err)
		}
	}
	var page api.InboxResponse
	get("/v1/users/alice/inbox", &page)
	var ids []string
	for _, m := range page.Messages {
		ids = append(ids, m.MessageID+"/"+m.Audience)
	}
	if got := strings.Join(ids, ","); got != "parcel/user,notice/all,d11/all" {
		t.Fatalf("alice's inbox over HTTP: %s", got)
	}
	if m := page.Messages[2]; m.Link != "/d11" || m.ExpiresAt == nil || m.Title != "Double 11 starts" {
		t.Fatalf("d11 reads %+v", m)
	}
	res, err := http.Post(hs.URL+"/v1/users/alice/inbox/parcel/read", "application/json", nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("marking read: %v %v", res, err)
	}
	res.Body.Close()
	out = run("station", "inbox", "alice")
	if !strings.Contains(out, "inbox of alice: 2 unread") || !strings.Contains(out, "parcel") || !strings.Contains(out, `"Double 11 starts" (unread, expires`) {
		t.Fatalf("station inbox printed:\n%s", out)
	}

	run("station", "withdraw", "--id", "notice")
	waitFor(t, "the withdrawal", func() bool {
		n, err := st.UnreadCount(ctx, "bob")
		return err == nil && n == 1
	})
	var unread api.UnreadResponse
	get("/v1/users/alice/inbox/unread-count", &unread)
	if unread.Unread != 1 {
		t.Fatalf("alice's unread after the withdrawal: %d, want 1", unread.Unread)
	}

	// The bad record went to the dead-letter topic, from this stage.
	dlq, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.Kafka.Brokers...), kgo.ConsumeTopics(e.cfg.Runtime.DLQTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	var reason, stage string
	for reason == "" {
		fetches := dlq.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("no dead letter for the wrongly keyed message")
		}
		fetches.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				switch h.Key {
				case stream.HeaderDLQReason:
					reason = string(h.Value)
				case stream.HeaderDLQStage:
					stage = string(h.Value)
				}
			}
		})
	}
	if reason != "key_mismatch" || stage != stageStation {
		t.Fatalf("dead letter reason %q from stage %q", reason, stage)
	}

	// ClickHouse archives the four valid events.
	conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, "the ClickHouse archive", func() bool {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM `"+e.prefix+"`.events_raw FINAL WHERE type LIKE 'station.%'").Scan(&n)
		return err == nil && n == 4
	})
}
