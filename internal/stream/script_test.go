package stream

import (
	"context"
	"errors"
	"testing"
)

func TestRetryNoScript(t *testing.T) {
	noscript := errors.New("NOSCRIPT No matching script. Please use EVAL.")
	other := errors.New("READONLY")
	cases := []struct {
		name          string
		results       []error
		loadErr       error
		calls, loads  int
		wantErr       error
		wantJoinedErr bool
	}{
		{"success", []error{nil}, nil, 1, 0, nil, false},
		{"other error: no retry", []error{other}, nil, 1, 0, other, false},
		{"noscript: load and retry", []error{noscript, nil}, nil, 2, 1, nil, false},
		{"noscript twice: the second error", []error{noscript, noscript}, nil, 2, 1, noscript, false},
		{"load fails: both errors", []error{noscript}, other, 1, 1, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls, loads := 0, 0
			err := RetryNoScript(context.Background(), func(context.Context) error { loads++; return tc.loadErr },
				func() error { calls++; return tc.results[calls-1] })
			if calls != tc.calls || loads != tc.loads {
				t.Errorf("calls %d loads %d, want %d %d", calls, loads, tc.calls, tc.loads)
			}
			switch {
			case tc.wantJoinedErr:
				if !errors.Is(err, noscript) || !errors.Is(err, tc.loadErr) {
					t.Errorf("err %v, want both", err)
				}
			case !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil):
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
	if IsNoScript(nil) || IsNoScript(other) || !IsNoScript(noscript) {
		t.Error("IsNoScript")
	}
}
