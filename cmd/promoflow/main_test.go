package main

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	cases := []struct {
		args     []string
		wantPos  []string
		wantConf string
	}{
		{[]string{"apply", "--config", "f.yaml"}, []string{"apply"}, "f.yaml"},
		{[]string{"--config", "f.yaml", "apply"}, []string{"apply"}, "f.yaml"},
		{[]string{"show", "x", "--config=g"}, []string{"show", "x"}, "g"},
		{[]string{"--", "-not-a-flag"}, []string{"-not-a-flag"}, ""},
		{nil, nil, ""},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		conf := fs.String("config", "", "")
		pos, err := parseInterspersed(fs, c.args)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if !reflect.DeepEqual(pos, c.wantPos) || *conf != c.wantConf {
			t.Errorf("%q: positional %q config %q, want %q %q", c.args, pos, *conf, c.wantPos, c.wantConf)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, []string{"apply", "--nope"}); err == nil {
		t.Fatal("unknown flag after the action was accepted")
	}
}
