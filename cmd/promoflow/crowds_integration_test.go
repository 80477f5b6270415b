package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// TestIntegrationCrowdsEndToEnd runs crowds as docs/crowds.md tells an
// operator to: maintain the tables, import a routine crowd and a manual
// one from files (a file with a bad line publishes nothing; importing a
// file again adds nothing), let the sink-crowd stage store them, and read
// them over HTTP (every member once, paged) and from the CLI.
func TestIntegrationCrowdsEndToEnd(t *testing.T) {
	e := startCouponEnv(t, stageCrowd)
	ctx := testenv.Context(t, 3*time.Minute)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "promoflow.yaml")
	body := fmt.Sprintf("kafka:\n  brokers: [%s]\nmysql:\n  dsn: %q\n  database_prefix: %q\n  databases: 2\n  tables_per_database: 2\nlog:\n  level: error\n",
		strings.Join(e.cfg.Kafka.Brokers, ", "), testenv.MySQLDSN(), e.prefix)
	cli := newCLI(t, cfgFile, body)
	run, must := cli.run, cli.mustOut
	// The stage maintained the tables at start; a second run finds nothing to do.
	if out := must("crowds", "maintain"); !strings.Contains(out, "0 created ahead, 0 backed up, 0 dropped") {
		t.Errorf("maintain after the stage's own run: %s", out)
	}

	var want []string
	var file strings.Builder
	file.WriteString("user_id,score\n")
	for i := range 5000 {
		u := fmt.Sprintf("u%05d", i)
		want = append(want, u)
		fmt.Fprintf(&file, "%s,%d\n", u, i%7)
	}
	file.WriteString("u00042,1\n") // a duplicate line
	vip := filepath.Join(dir, "vip.csv")
	os.WriteFile(vip, []byte(file.String()), 0o600)
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("ok-1\nnot a user\nok-2\n"), 0o600)

	code, _, errOut := run("crowds", "import", "--crowd", "vip", "--app", "shop", "--trigger", "routine", "--users", bad)
	if code == 0 || !strings.Contains(errOut, "line 2") || !strings.Contains(errOut, "nothing published") {
		t.Errorf("a bad file: exit %d, %s", code, errOut)
	}
	out := must("crowds", "import", "--crowd", "vip", "--app", "shop", "--trigger", "routine", "--users", vip)
	if !strings.Contains(out, "published 5000 memberships of crowd vip") {
		t.Errorf("import printed %q", out)
	}
	must("crowds", "import", "--crowd", "vip", "--app", "shop", "--trigger", "routine", "--users", vip) // again: nothing new
	beta := filepath.Join(dir, "beta.txt")
	os.WriteFile(beta, []byte("alice\nbob\ncarol\n"), 0o600)
	must("crowds", "import", "--crowd", "beta", "--app", "live", "--trigger", "manual", "--users", beta)
	gone := filepath.Join(dir, "gone.txt")
	os.WriteFile(gone, []byte("bob\n"), 0o600)
	must("crowds", "import", "--crowd", "beta", "--app", "live", "--trigger", "manual", "--remove", "--users", gone)

	sink, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	crowds, err := sink.Crowds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to store the crowds", func() bool {
		c, err := crowds.Crowd(ctx, "vip")
		in, _ := crowds.IsMember(ctx, "beta", "bob")
		ok, _ := crowds.IsMember(ctx, "beta", "carol")
		return err == nil && c.Day != "" && ok && !in
	})

	srv, err := api.New(api.Config{Coupons: sink, Batches: coupon.NewBatches(), Crowds: crowds})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	var got []string
	next := ""
	for {
		resp, err := http.Get(hs.URL + "/v1/crowds/vip/members?limit=700&after=" + next)
		if err != nil {
			t.Fatal(err)
		}
		var page api.CrowdMembersResponse
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("members page: %d %v", resp.StatusCode, err)
		}
		got = append(got, page.Members...)
		if page.Next == "" {
			break
		}
		next = page.Next
	}
	if !slices.Equal(got, want) {
		t.Errorf("over HTTP: %d members, want all %d once in order", len(got), len(want))
	}
	resp, err := http.Get(hs.URL + "/v1/crowds/beta/members/bob")
	if err != nil {
		t.Fatal(err)
	}
	var m api.CrowdMemberResponse
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if m.Member {
		t.Error("bob was removed from beta but is a member over HTTP")
	}
	if out := must("crowds", "members", "beta"); out != "alice\ncarol\n" {
		t.Errorf("crowds members beta: %q", out)
	}
	if out := must("crowds", "show", "vip"); !strings.Contains(out, `"trigger": "routine"`) || !strings.Contains(out, `"app_id": "shop"`) {
		t.Errorf("crowds show vip: %s", out)
	}
}
