//go:build linux

package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestWatchUsage checks what watch refuses before touching the kernel.
func TestWatchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch"}, "--pid or --container is required"},
		{[]string{"watch", "--pid", "1", "--container", "web"}, "use one"},
		{[]string{"watch", "--container", "no-such-container-here"}, "no running process of such a container"},
		{[]string{"watch", "--pid", "1", "--duration", "1s", "--trigger", "true"}, "use one"},
		{[]string{"watch", "--pid", "1", "--grace", "-1s"}, "cannot be negative"},
		{[]string{"watch", "--pid", "1", "--format", "xml"}, "unknown --format"},
		{[]string{"watch", "--pid", "2147483647"}, "no such process"},
		{[]string{"watch", "--pid", "1", "extra"}, "unknown command"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), tc.args, nil, &out, &errb)
		if code != ExitUsage || !strings.Contains(errb.String(), tc.want) || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and %q", tc.args, code, errb.String(), out.String(), ExitUsage, tc.want)
		}
	}
}
