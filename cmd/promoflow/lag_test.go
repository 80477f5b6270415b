package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
)

// TestLagAndGroups produces 100 claims, lets a group member commit the
// first 40 it sees and stay in the group, and checks lag and groups.
func TestLagAndGroups(t *testing.T) {
	brokers, adm := testenv.KafkaWithTopics(t)
	ctx := testenv.Context(t, 14*time.Second)
	group := testenv.Name("promoflow-lagtest")
	const clientID = "lagtest-member"

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	recs := make([]*kgo.Record, 100)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "coupon.claims", Key: []byte(fmt.Sprintf("user-%d", i)), Value: []byte("claim")}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}

	member, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics("coupon.claims"),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	var seen []*kgo.Record
	for len(seen) < 40 {
		fs := member.PollRecords(ctx, 40-len(seen))
		if err := ctx.Err(); err != nil {
			t.Fatalf("polled only %d records: %v", len(seen), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		seen = append(seen, fs.Records()...)
	}
	if len(seen) != 40 {
		t.Fatalf("polled %d records, want 40", len(seen))
	}
	if err := member.CommitRecords(ctx, seen...); err != nil {
		t.Fatalf("committing: %v", err)
	}
	time.Sleep(5 * time.Millisecond) // every unprocessed record is now older than 0

	var out bytes.Buffer
	if err := reportLag(ctx, brokers, []string{group}, &out); err != nil {
		t.Fatalf("reportLag: %v\n%s", err, out.String())
	}
	t.Logf("lag:\n%s", out.String())
	if want := fmt.Sprintf("total %s: lag 60 records", group); !strings.Contains(out.String(), want) {
		t.Errorf("lag output lacks %q", want)
	}
	lagging, sum := 0, 0
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != "coupon.claims" {
			continue
		}
		var n int
		if _, err := fmt.Sscan(f[4], &n); err != nil {
			t.Errorf("bad lag column in %q", line)
			continue
		}
		sum += n
		if f[6] != clientID {
			t.Errorf("owner of partition %s is %q, want %q: %q", f[1], f[6], clientID, line)
		}
		if n > 0 {
			lagging++
			if f[5] == "-" || f[5] == "?" {
				t.Errorf("partition %s lags %d records but time lag is %q", f[1], n, f[5])
			}
		} else if f[5] != "-" {
			t.Errorf("partition %s has no lag but time lag %q", f[1], f[5])
		}
	}
	if sum != 60 || lagging == 0 {
		t.Errorf("partition lags sum to %d over %d lagging partitions, want 60", sum, lagging)
	}

	out.Reset()
	if err := listGroups(ctx, adm, &out); err != nil {
		t.Fatalf("listGroups: %v", err)
	}
	t.Logf("groups:\n%s", out.String())
	found := false
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, group+" ") && strings.Contains(line, clientID) && strings.Contains(line, "coupon.claims[") {
			found = true
		}
	}
	if !found {
		t.Errorf("groups does not list %s with member %s and its assignment", group, clientID)
	}
	if !strings.HasPrefix(out.String(), "GROUP ") {
		t.Errorf("groups output has no header")
	}
}

func TestLagUnknownGroup(t *testing.T) {
	brokers, _ := testenv.KafkaWithTopics(t)
	ctx := testenv.Context(t, 10*time.Second)
	group := testenv.Name("promoflow-nosuch")
	var out bytes.Buffer
	if err := reportLag(ctx, brokers, []string{group}, &out); err != nil {
		t.Fatalf("reportLag for an unknown group failed: %v", err)
	}
	if want := "group " + group + ": not found"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}

	// The default (every promoflow-* group) on a cluster without any.
	out.Reset()
	if err := reportLag(ctx, brokers, nil, &out); err != nil {
		t.Fatalf("reportLag with no groups failed: %v", err)
	}
	if !strings.Contains(out.String(), "no consumer groups named promoflow-* found") {
		t.Errorf("unexpected output:\n%s", out.String())
	}

	// Through the command line: exit 0.
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"lag", "--brokers", strings.Join(brokers, ","), "--group", group}, &stdout, &stderr); code != 0 {
		t.Errorf("lag --group %s exited %d; stderr:\n%s", group, code, stderr.String())
	}
}
