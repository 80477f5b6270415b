package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/lottery"
)

// topicsCluster starts a kfake cluster of n brokers, reached over TCP, and
// returns a function that opens a new admin client for it.
//
// Each apply and each check gets its own client, as separate runs of
// `promoflow topics apply` would: kadm answers ListTopics from the client's
// metadata cache (kgo.MetadataMinAge, 5s), so a client that saw a topic
// missing keeps seeing it missing for a while after it was created.
func topicsCluster(t *testing.T, n int) func() *kadm.Client {
	t.Helper()
	_, addrs := testenv.Kafka(t, n)
	return func() *kadm.Client {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
		if err != nil {
			t.Fatalf("creating client: %v", err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
}

func loadTopology(t *testing.T) *topology.File {
	t.Helper()
	topo, err := topology.Load()
	if err != nil {
		t.Fatalf("loading topics.yaml: %v", err)
	}
	if len(topo.Topics) == 0 {
		t.Fatal("topics.yaml declares no topics")
	}
	return topo
}

// applyOK runs applyTopics and returns its change count and output.
func applyOK(ctx context.Context, t *testing.T, adm *kadm.Client, topo *topology.File) (int, string) {
	t.Helper()
	var out bytes.Buffer
	n, err := applyTopics(ctx, adm, topo, &out)
	if err != nil {
		t.Fatalf("applyTopics: %v\noutput:\n%s", err, out.String())
	}
	return n, out.String()
}

// topicConfigs returns the configs the cluster reports for topic.
func topicConfigs(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) map[string]string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describing configs of %s: %v", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describing configs of %s: %v", topic, firstErr(err, rc.Err))
	}
	out := map[string]string{}
	for _, c := range rc.Configs {
		if c.Value != nil {
			out[c.Key] = *c.Value
		}
	}
	return out
}

// wantTopicsLikeFile checks that every topic of topo exists with its
// partitions, replication factor (capped at brokers) and configs.
func wantTopicsLikeFile(ctx context.Context, t *testing.T, adm *kadm.Client, topo *topology.File, brokers int) {
	t.Helper()
	names := make([]string, len(topo.Topics))
	for i, tp := range topo.Topics {
		names[i] = tp.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatalf("listing topics: %v", err)
	}
	for _, tp := range topo.Topics {
		d, ok := details[tp.Name]
		if !ok || d.Err != nil {
			t.Errorf("%s: missing after apply (err %v)", tp.Name, d.Err)
			continue
		}
		if got := int32(len(d.Partitions)); got != tp.Partitions {
			t.Errorf("%s: %d partitions, want %d", tp.Name, got, tp.Partitions)
		}
		wantRF := min(int(tp.ReplicationFactor), brokers)
		if got := d.Partitions.NumReplicas(); got != wantRF {
			t.Errorf("%s: replication factor %d, want %d", tp.Name, got, wantRF)
		}
		cfg := topicConfigs(ctx, t, adm, tp.Name)
		if got := cfg["cleanup.policy"]; got != tp.CleanupPolicy {
			t.Errorf("%s: cleanup.policy %q, want %q", tp.Name, got, tp.CleanupPolicy)
		}
		if got, want := cfg["retention.ms"], fmt.Sprint(tp.RetentionMs()); got != want {
			t.Errorf("%s: retention.ms %q, want %q", tp.Name, got, want)
		}
		if want, ok := tp.Configs["min.insync.replicas"]; ok && wantRF >= 2 {
			if got := cfg["min.insync.replicas"]; got != want {
				t.Errorf("%s: min.insync.replicas %q, want %q", tp.Name, got, want)
			}
		}
	}
}

func TestTopicsApplyCreatesEveryTopic(t *testing.T) {
	ctx := testenv.Context(t, 30*time.Second)
	admin := topicsCluster(t, 3)
	topo := loadTopology(t)

	n, out := applyOK(ctx, t, admin(), topo)
	if n != len(topo.Topics) {
		t.Errorf("first apply reported %d changes, want %d (one per topic)\n%s", n, len(topo.Topics), out)
	}
	for _, tp := range topo.Topics {
		if !strings.Contains(out, "created  "+tp.Name+" ") {
			t.Errorf("output does not report creating %s:\n%s", tp.Name, out)
		}
	}
	if strings.Contains(out, "capped") {
		t.Errorf("3 brokers are enough for every topic, yet the output caps a replication factor:\n%s", out)
	}
	wantTopicsLikeFile(ctx, t, admin(), topo, 3)

	// Idempotent: nothing to do the second time.
	n, out = applyOK(ctx, t, admin(), topo)
	if n != 0 {
		t.Errorf("second apply reported %d changes, want 0:\n%s", n, out)
	}
	if !strings.Contains(out, "no changes") {
		t.Errorf("second apply output lacks \"no changes\":\n%s", out)
	}
}

func TestTopicsApplyRestoresAlteredConfig(t *testing.T) {
	ctx := testenv.Context(t, 30*time.Second)
	admin := topicsCluster(t, 3)
	topo := loadTopology(t)
	applyOK(ctx, t, admin(), topo)

	// Pick a topic with a finite retention, so that "-1" is a real change.
	var target topology.Topic
	for _, tp := range topo.Topics {
		if tp.RetentionMs() > 0 {
			target = tp
			break
		}
	}
	if target.Name == "" {
		t.Fatal("topics.yaml has no topic with a finite retention")
	}
	want := fmt.Sprint(target.RetentionMs())
	resp, err := admin().AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("60000")}}, target.Name)
	if err != nil {
		t.Fatalf("altering retention.ms by hand: %v", err)
	}
	for _, r := range resp {
		if r.Err != nil {
			t.Fatalf("altering retention.ms by hand: %v", r.Err)
		}
	}
	if got := topicConfigs(ctx, t, admin(), target.Name)["retention.ms"]; got != "60000" {
		t.Fatalf("retention.ms after the manual change is %q, want 60000", got)
	}

	n, out := applyOK(ctx, t, admin(), topo)
	if n != 1 {
		t.Errorf("apply after one manual change reported %d changes, want 1:\n%s", n, out)
	}
	wantLine := fmt.Sprintf("altered  %s: retention.ms %q -> %q", target.Name, "60000", want)
	if !strings.Contains(out, wantLine) {
		t.Errorf("output lacks %q:\n%s", wantLine, out)
	}
	if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines != 1 {
		t.Errorf("output reports more than the one change:\n%s", out)
	}
	if got := topicConfigs(ctx, t, admin(), target.Name)["retention.ms"]; got != want {
		t.Errorf("retention.ms after apply is %q, want %q", got, want)
	}
	wantTopicsLikeFile(ctx, t, admin(), topo, 3)
}

func TestTopicsApplyAddsPartitions(t *testing.T) {
	ctx := testenv.Context(t, 30*time.Second)
	admin := topicsCluster(t, 3)
	topo := loadTopology(t)
	tp := topo.Topics[0]
	if tp.Partitions < 2 {
		t.Skipf("%s has one partition; nothing to add", tp.Name)
	}
	// The topic exists already, smaller than declared.
	resp, err := admin().CreateTopic(ctx, 1, 1, nil, tp.Name)
	if err != nil || resp.Err != nil {
		t.Fatalf("creating %s by hand: %v", tp.Name, firstErr(err, resp.Err))
	}
	_, out := applyOK(ctx, t, admin(), topo)
	wantLine := fmt.Sprintf("altered  %s: partitions 1 -> %d", tp.Name, tp.Partitions)
	if !strings.Contains(out, wantLine) {
		t.Errorf("output lacks %q:\n%s", wantLine, out)
	}
	details, err := admin().ListTopics(ctx, tp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := int32(len(details[tp.Name].Partitions)); got != tp.Partitions {
		t.Errorf("%s has %d partitions after apply, want %d", tp.Name, got, tp.Partitions)
	}
}

func TestTopicsApplyCapsReplicationOnOneBroker(t *testing.T) {
	ctx := testenv.Context(t, 30*time.Second)
	admin := topicsCluster(t, 1)
	topo := loadTopology(t)

	n, out := applyOK(ctx, t, admin(), topo)
	if n != len(topo.Topics) {
		t.Errorf("apply reported %d changes, want %d:\n%s", n, len(topo.Topics), out)
	}
	for _, tp := range topo.Topics {
		if tp.ReplicationFactor > 1 && !strings.Contains(out, tp.Name+": replication_factor") {
			t.Errorf("output does not say the replication of %s was capped:\n%s", tp.Name, out)
		}
	}
	if !strings.Contains(out, "capped") {
		t.Errorf("output lacks \"capped\":\n%s", out)
	}
	wantTopicsLikeFile(ctx, t, admin(), topo, 1)
	for _, tp := range topo.Topics {
		if _, ok := tp.Configs["min.insync.replicas"]; !ok {
			continue
		}
		got := topicConfigs(ctx, t, admin(), tp.Name)["min.insync.replicas"]
		if got != "" && got != "1" {
			t.Errorf("%s: min.insync.replicas %q on a single replica; it should have been dropped", tp.Name, got)
		}
		if strings.Contains(lineOf(out, "created  "+tp.Name+" "), "min.insync.replicas") {
			t.Errorf("%s was created with min.insync.replicas on one broker:\n%s", tp.Name, out)
		}
	}

	// Still idempotent with the capped layout.
	n, out = applyOK(ctx, t, admin(), topo)
	if n != 0 || !strings.Contains(out, "no changes") {
		t.Errorf("second apply on one broker: %d changes, want 0 and \"no changes\":\n%s", n, out)
	}
}

// lineOf returns the first line of out that starts with prefix.
func lineOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestTopologyMatchesTopicsFile(t *testing.T) {
	topo := loadTopology(t)
	nodes := stageDecls()
	if err := topo.Check(nodes...); err != nil {
		t.Fatalf("stage declarations do not match topics.yaml:\n%v", err)
	}

	// Every stage of `promoflow run --only` is declared, once, plus the
	// admin stages that run with the coupon and lottery stages.
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	want := append([]string{"coupon-admin", "lottery-admin", "referral-admin"}, allStages...)
	sort.Strings(want)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("stageDecls declares %v, want the run stages %v", names, want)
	}

	// Topics the stages use without declaring them as reads or writes: the
	// coupon batch view and the dead-letter topic.
	var def Config
	def.defaults()
	for _, name := range []string{coupon.TopicAdmin, lottery.TopicAdmin, def.Runtime.DLQTopic} {
		if _, ok := topo.Topic(name); !ok {
			t.Errorf("topics.yaml does not declare %s", name)
		}
	}

	// Negative cases: the check must catch what a wrong declaration looks like.
	bad := []struct {
		name string
		node topology.Node
		want string
	}{
		{"undeclared read", topology.Node{Name: "rogue", Group: "rogue", Reads: []string{"coupon.nope"}}, "rogue reads coupon.nope, which topics.yaml does not declare"},
		{"undeclared write", topology.Node{Name: "rogue", Group: "rogue", Writes: []string{"coupon.nope"}}, "rogue writes coupon.nope"},
		{"unhandled schema", topology.Node{Name: "rogue", Group: "rogue", Reads: []string{coupon.TopicClaims}}, "does not handle its schema"},
		{"shared group", topology.Node{Name: "rogue", Group: nodes[0].Group, Reads: nodes[0].Reads, Handles: nodes[0].Handles}, "both join group"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := topo.Check(append(append([]topology.Node(nil), nodes...), tc.node)...)
			if err == nil {
				t.Fatalf("Check accepted %+v", tc.node)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	if len(commands) == 0 {
		t.Fatal("no commands registered")
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runMain([]string{"help", name}, &out, &errOut); code != 0 {
				t.Fatalf("help %s exited %d; stderr:\n%s", name, code, errOut.String())
			}
			if want := "Usage: promoflow " + name; !strings.Contains(out.String(), want) {
				t.Errorf("help %s printed no %q:\n%s", name, want, out.String())
			}
			if s := strings.TrimSpace(commands[name].summary); s == "" {
				t.Errorf("command %s has no summary", name)
			}

			out.Reset()
			errOut.Reset()
			if code := runMain([]string{name, "-h"}, &out, &errOut); code != 0 {
				t.Fatalf("%s -h exited %d; stderr:\n%s", name, code, errOut.String())
			}
			if want := "Usage: promoflow " + name; !strings.Contains(out.String()+errOut.String(), want) {
				t.Errorf("%s -h printed no %q", name, want)
			}
		})
	}

	t.Run("overview", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := runMain(nil, &out, &errOut); code != 0 {
			t.Fatalf("no arguments exited %d", code)
		}
		for _, name := range names {
			if !strings.Contains(out.String(), "  "+name+" ") {
				t.Errorf("overview does not list %s:\n%s", name, out.String())
			}
		}
	})

	for _, args := range [][]string{{"no-such-command"}, {"help", "no-such-command"}} {
		t.Run("unknown "+strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runMain(args, &out, &errOut); code != 2 {
				t.Errorf("%q exited %d, want 2", args, code)
			}
			if !strings.Contains(errOut.String(), `unknown command "no-such-command"`) {
				t.Errorf("%q: stderr does not name the unknown command:\n%s", args, errOut.String())
			}
		})
	}
}

// TestTopicsCommandAsComposeRunsIt runs `promoflow topics ... apply` the way
// the topics service of docker-compose.yml does, with its configuration
// file, against a 3-broker cluster.
func TestTopicsCommandAsComposeRunsIt(t *testing.T) {
	clearConfigEnv(t)
	_, addrs := testenv.Kafka(t, 3)
	topo := loadTopology(t)
	args := []string{"topics", "--config", "../../deploy/promoflow.compose.yaml", "--brokers", strings.Join(addrs, ","), "apply"}
	var out, errOut bytes.Buffer
	if code := runMain(args, &out, &errOut); code != 0 {
		t.Fatalf("promoflow %s exited %d:\n%s", strings.Join(args, " "), code, errOut.String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	wantTopicsLikeFile(testenv.Context(t, 30*time.Second), t, kadm.NewClient(cl), topo, 3)
}
