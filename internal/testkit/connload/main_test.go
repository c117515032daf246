package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-duration", "300ms", "-workers", "2", "-rate", "1000"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var n, failed uint64
	var secs, rate float64
	if _, err := fmt.Sscanf(out.String(), "connects %d failed %d seconds %f per_second %f", &n, &failed, &secs, &rate); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	// Paced at 1000/s for 0.3 s: about 300, never far more.
	if n < 100 || n > 400 || failed != 0 || secs < 0.29 {
		t.Errorf("connects %d failed %d in %.3f s, want about 300 paced, none failed", n, failed, secs)
	}
	for _, bad := range [][]string{{"-duration", "2m"}, {"-workers", "0"}, {"-rate", "-1"}} {
		if code := run(context.Background(), bad, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
