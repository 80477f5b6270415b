package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/promoflow/promoflow/sinks/mysql"
)

// cliRunner runs promoflow commands in-process, as an operator would, with
// the configuration file written from body.
type cliRunner struct {
	t   *testing.T
	cfg string
}

func newCLI(t *testing.T, cfgFile, body string) cliRunner {
	t.Helper()
	if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cliRunner{t: t, cfg: cfgFile}
}

// run runs a command with --config and returns its exit code and outputs.
func (c cliRunner) run(args ...string) (code int, out, errOut string) {
	c.t.Helper()
	var o, e bytes.Buffer
	code = runMain(append(args, "--config", c.cfg), &o, &e)
	return code, o.String(), e.String()
}

// must runs a command that must succeed and returns its outputs.
func (c cliRunner) must(args ...string) (out, errOut string) {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	if code != 0 {
		c.t.Fatalf("promoflow %s exited %d:\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out, errOut
}

// mustOut is must's standard output alone.
func (c cliRunner) mustOut(args ...string) string {
	c.t.Helper()
	out, _ := c.must(args...)
	return out
}

// crowdStore opens the environment's crowd store, closed with the test.
func (e *couponEnv) crowdStore(ctx context.Context) *mysql.Crowds {
	e.t.Helper()
	sink, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sink.Close() })
	crowds, err := sink.Crowds(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return crowds
}
