package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/notify"
)

// TestIntegrationNotifyEndToEnd runs a campaign as docs/notifications.md
// tells an operator to: import crowds, let promoflow run plan and send
// them (the log sender writing to a file), follow the campaign with
// notify --wait, and read its status. A cap of one a day holds across
// campaigns, a repeated campaign sends nothing, and an unknown crowd or
// template is refused with its reason.
func TestIntegrationNotifyEndToEnd(t *testing.T) {
	e := startCouponEnv(t, stageCrowd, stageNotifyPlan, stageNotifySend)
	ctx := testenv.Context(t, 4*time.Minute)
	dir := t.TempDir()
	sent := filepath.Join(dir, "sent.jsonl")
	e.cfg.Notify.LogFile = sent
	e.cfg.Notify.Caps = []notify.Cap{{Window: 24 * time.Hour, Max: 1}}
	e.cfg.Notify.Templates = map[string]notify.Template{"presale": {Title: "Double 11 presale", Body: "{{.UserID}}, your coupons are waiting."}}
	e.restart()

	cfgFile := filepath.Join(dir, "promoflow.yaml")
	body := fmt.Sprintf(`kafka:
  brokers: [%s]
redis:
  addr: %q
  key_prefix: %q
mysql:
  dsn: %q
  database_prefix: %q
  databases: 2
  tables_per_database: 2
log:
  level: error
notify:
  caps: [{window: 24h, max: 1}]
  templates:
    presale:
      title: "Double 11 presale"
      body: "{{.UserID}}, your coupons are waiting."
`, strings.Join(e.cfg.Kafka.Brokers, ", "), e.cfg.Redis.Addr, e.prefix, testenv.MySQLDSN(), e.prefix)
	cli := newCLI(t, cfgFile, body)
	run, must := cli.run, cli.must
	file := func(name string, users ...string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(strings.Join(users, "\n")+"\n"), 0o600)
		return p
	}
	var vip []string
	for i := range 3000 {
		vip = append(vip, fmt.Sprintf("u%05d", i))
	}
	must("crowds", "import", "--crowd", "vip", "--app", "shop", "--trigger", "routine", "--users", file("vip.txt", vip...))
	must("crowds", "import", "--crowd", "beta", "--app", "live", "--trigger", "manual", "--users", file("beta.txt", "u00001", "u00002", "x1", "x2"))
	must("crowds", "import", "--crowd", "solo", "--app", "live", "--trigger", "manual", "--users", file("solo.txt", "z1"))
	crowds := e.crowdStore(ctx)
	waitFor(t, "the sink to store the crowds", func() bool {
		c, err := crowds.Crowd(ctx, "vip")
		x2, _ := crowds.IsMember(ctx, "beta", "x2")
		z1, _ := crowds.IsMember(ctx, "solo", "z1")
		return err == nil && c.Day != "" && x2 && z1
	})

	out, progress := must("notify", "--crowd", "vip", "--template", "presale", "--campaign", "d11", "--shard-size", "250", "--wait")
	if strings.TrimSpace(out) != "d11" || !strings.Contains(progress, "12/12 shards done, 3000 of 3000 users settled (3000 sent, 0 capped, 0 failed)") {
		t.Fatalf("notify --wait printed %q and %q", out, progress)
	}
	must("notify", "send", "--crowd", "beta", "--template", "presale", "--campaign", "beta-1", "--wait")
	out, _ = must("notify", "status", "beta-1", "--json", "--user", "u00001")
	var st struct {
		notify.Progress
		UserState string `json:"user_state"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Sent != 2 || st.Capped != 2 || st.UserState != "capped" || st.Status != notify.StatusPlanned {
		t.Fatalf("status beta-1: %s (%v)", out, err)
	}
	// The same campaign again sends nothing; a probe campaign after it
	// shows the repeat was consumed.
	must("notify", "--crowd", "vip", "--template", "presale", "--campaign", "d11", "--wait")
	must("notify", "--crowd", "solo", "--template", "presale", "--campaign", "probe", "--wait")

	got := map[string]int{}
	f, err := os.Open(sent)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m notify.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log sender line %q: %v", sc.Text(), err)
		}
		if m.IdempotencyKey != m.CampaignID+":"+m.UserID || m.Title != "Double 11 presale" || m.Body != m.UserID+", your coupons are waiting." {
			t.Fatalf("message %+v", m)
		}
		got[m.CampaignID+" "+m.UserID]++
	}
	for _, u := range vip {
		if got["d11 "+u] != 1 {
			t.Fatalf("user %s got d11 %d times", u, got["d11 "+u])
		}
	}
	if len(got) != 3000+2+1 || got["beta-1 x1"] != 1 || got["beta-1 x2"] != 1 || got["probe z1"] != 1 {
		t.Fatalf("%d distinct sends: beta-1 x1 %d, x2 %d, probe z1 %d", len(got), got["beta-1 x1"], got["beta-1 x2"], got["probe z1"])
	}
	for k, n := range got {
		if n != 1 {
			t.Fatalf("%s sent %d times", k, n)
		}
	}

	// notify verify reads the shards back and checks every user in Redis.
	if out, _ := must("notify", "verify", "d11"); !strings.Contains(out, "3000 users: 3000 sent") || !strings.Contains(out, "OK: every user settled once") {
		t.Fatalf("verify d11: %s", out)
	}
	if out, _ := must("notify", "verify", "beta-1"); !strings.Contains(out, "4 users: 2 sent, 2 capped") {
		t.Fatalf("verify beta-1: %s", out)
	}
	rdb := newRedis(e.cfg.Redis)
	defer rdb.Close()
	rdb.HDel(ctx, e.prefix+":ntf:u:{u00042}", "d11")
	code, out, _ := run("notify", "verify", "d11")
	if code != 1 || !strings.Contains(out, "BREACH 1 users not settled (0 reserved, 1 with no record), e.g. u00042") {
		t.Fatalf("verify after a lost record: exit %d, %s", code, out)
	}

	// Cancelling a campaign (here one already sent) stops whatever is left
	// of it; verify then accepts the users not sent.
	if out, _ := must("notify", "cancel", "probe"); !strings.Contains(out, "campaign probe cancelled: 1 users sent before it, 1 of 1 shards done") {
		t.Fatalf("cancel: %s", out)
	}
	if out, _ := must("notify", "status", "probe"); !strings.Contains(out, "status     cancelled") {
		t.Fatalf("status after cancel: %s", out)
	}
	if out, _ := must("notify", "verify", "probe"); !strings.Contains(out, "OK: cancelled at") {
		t.Fatalf("verify after cancel: %s", out)
	}
	if code, _, errOut := run("notify", "cancel", "never-requested"); code != 1 || !strings.Contains(errOut, "unknown campaign") {
		t.Fatalf("cancel of an unknown campaign: exit %d, %s", code, errOut)
	}

	code, _, errOut := run("notify", "--crowd", "nope", "--template", "presale", "--campaign", "nope-1", "--wait", "--timeout", "1m")
	if code != 1 || !strings.Contains(errOut, notify.ReasonUnknownCrowd) {
		t.Fatalf("unknown crowd: exit %d, %s", code, errOut)
	}
	code, _, errOut = run("notify", "--crowd", "vip", "--template", "nope")
	if code != 2 || !strings.Contains(errOut, "not in notify.templates") {
		t.Fatalf("unknown template: exit %d, %s", code, errOut)
	}
	if out, _ := must("notify", "templates"); !strings.HasPrefix(out, "presale\tDouble 11 presale") {
		t.Fatalf("templates: %q", out)
	}
}

// TestIntegrationNotifyKill9 sends a campaign of 200,000 users through
// notify-send processes that are killed with SIGKILL mid-campaign and
// replaced, four times. Every user is delivered, Redis counts each user
// sent exactly once, and the only repeats are the shards a killed process
// had delivered but not yet marked (at most its poll of shards per kill),
// each carrying the same idempotency key.
func TestIntegrationNotifyKill9(t *testing.T) {
	const users, shardSize, kills = 200_000, 500, 4
	e := startCouponEnv(t, stageCrowd, stageNotifyPlan)
	dir := t.TempDir()
	e.cfg.Notify.Templates = map[string]notify.Template{"presale": {Title: "Presale", Body: "{{.UserID}}"}}
	e.restart()
	senderCfg := func(n int) (cfg, log string) {
		cfg, log = filepath.Join(dir, fmt.Sprintf("sender-%d.yaml", n)), filepath.Join(dir, fmt.Sprintf("sent-%d.jsonl", n))
		body := fmt.Sprintf(`kafka:
  brokers: [%s]
redis:
  addr: %q
  key_prefix: %q
runtime:
  session_timeout: 6s
log:
  level: warn
notify:
  log_file: %q
  templates:
    presale: {title: "Presale", body: "{{.UserID}}"}
`, strings.Join(e.cfg.Kafka.Brokers, ", "), e.cfg.Redis.Addr, e.prefix, log)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg, log
	}
	var logs []string
	start := func(n int) *proc {
		cfg, log := senderCfg(n)
		logs = append(logs, log)
		return startProc(t, fmt.Sprintf("sender-%d", n), "run", "--config", cfg, "--only", stageNotifySend)
	}
	senders := []*proc{start(0), start(1)}

	var file strings.Builder
	for i := range users {
		fmt.Fprintf(&file, "k%06d\n", i)
	}
	crowdFile := filepath.Join(dir, "crowd.txt")
	os.WriteFile(crowdFile, []byte(file.String()), 0o600)
	cfgFile, _ := senderCfg(99)
	var out, errOut bytes.Buffer
	if code := runMain([]string{"crowds", "import", "--config", cfgFile, "--crowd", "big", "--app", "shop", "--trigger", "manual", "--users", crowdFile}, &out, &errOut); code != 0 {
		t.Fatalf("import: %s%s", out.String(), errOut.String())
	}
	ctx := testenv.Context(t, 5*time.Minute)
	crowds := e.crowdStore(ctx)
	waitFor(t, "the crowd stored", func() bool {
		n, err := crowds.Members(ctx, "big", fmt.Sprintf("k%06d", users-2), 10)
		return err == nil && len(n) == 1
	})

	rdb := newRedis(e.cfg.Redis)
	defer rdb.Close()
	store := e.cfg.notifyStore(rdb)
	if code := runMain([]string{"notify", "--config", cfgFile, "--crowd", "big", "--template", "presale", "--campaign", "k9", "--shard-size", fmt.Sprint(shardSize)}, &out, &errOut); code != 0 {
		t.Fatalf("notify: %s%s", out.String(), errOut.String())
	}
	killed := 0
	for {
		p, _ := store.Progress(ctx, "k9")
		if p.Done() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("campaign not done: %+v", p)
		}
		if killed < kills && p.Sent > int64(killed+1)*users/(2*kills) {
			victim := senders[killed%len(senders)]
			victim.kill9()
			t.Logf("kill -9 %s at %d sent", victim.name, p.Sent)
			senders[killed%len(senders)] = start(len(logs))
			killed++
		}
		time.Sleep(20 * time.Millisecond)
	}
	p, _ := store.Progress(ctx, "k9")
	if killed < kills {
		t.Fatalf("the campaign ended after %d kills: %+v (make it longer)", killed, p)
	}
	got := make(map[string]int, users)
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			continue // a process killed before its first send
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m notify.Message
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue // the line a kill cut short
			}
			if m.IdempotencyKey != "k9:"+m.UserID {
				t.Fatalf("message %+v", m)
			}
			got[m.UserID]++
		}
		f.Close()
	}
	repeats := 0
	for i := range users {
		n := got[fmt.Sprintf("k%06d", i)]
		if n == 0 {
			t.Fatalf("user k%06d never delivered (%+v)", i, p)
		}
		repeats += n - 1
	}
	// A killed process may have delivered its poll of shards (8) unmarked.
	if limit := kills * 8 * shardSize; repeats > limit {
		t.Fatalf("%d repeated deliveries, more than %d kills can explain", repeats, kills)
	}
	if p.Sent != users || p.ShardsDone != users/shardSize {
		t.Fatalf("progress %+v, want %d sent, %d shards", p, users, users/shardSize)
	}
	if code := runMain([]string{"notify", "verify", "k9", "--config", cfgFile}, &out, &errOut); code != 0 {
		t.Fatalf("notify verify k9: %s%s", out.String(), errOut.String())
	}
	t.Logf("%d users, %d kills: every user delivered, %d repeated deliveries (delivered, then killed before the mark), Redis counted %d sent", users, killed, repeats, p.Sent)
}
