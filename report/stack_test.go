package report

import (
	"regexp"
	"testing"
)

// Stacks as egress watch --stacks recorded them for the three test apps
// (trimmed), and a stripped C program.
var (
	goStack = []Frame{
		{Function: "internal/runtime/syscall/linux.Syscall6", File: "/usr/local/go/src/internal/runtime/syscall/linux/asm_linux_amd64.s", Line: 36, Module: "/app"},
		{Function: "syscall.connect", File: "/usr/local/go/src/syscall/zsyscall_linux_amd64.go", Line: 1422, Module: "/app"},
		{Function: "net.(*netFD).connect", File: "/usr/local/go/src/net/fd_unix.go", Line: 48, Module: "/app"},
		{Function: "net/http.(*Transport).dial", File: "/usr/local/go/src/net/http/transport.go", Line: 1200, Module: "/app"},
		{Function: "github.com/hashicorp/go-retryablehttp.(*Client).Do", File: "/go/pkg/mod/x/client.go", Line: 600, Module: "/app"},
		{Function: "main.checkForUpdates", File: "/src/app/updates.go", Line: 42, Module: "/app"},
		{Function: "main.main", File: "/src/app/main.go", Line: 27, Module: "/app"},
		{Function: "runtime.main", File: "/usr/local/go/src/runtime/proc.go", Line: 290, Module: "/app"},
	}
	cStack = []Frame{
		{Function: "__connect", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6", Offset: 0x10a7c0},
		{Function: "check_for_updates", Module: "/tmp/phonehome", Offset: 0x13c5},
		{Function: "main", Module: "/tmp/phonehome", Offset: 0x12f0},
	}
	nodeStack = []Frame{
		{Function: "__connect", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Function: "_ZN4node7TCPWrap7ConnectERKN2v820FunctionCallbackInfoINS1_5ValueEEE", Module: "/usr/bin/node"},
		{Function: "internalConnect", File: "node:net", Line: 1038, Module: "[jit]"},
		{Function: "lookup", File: "/app/node_modules/cached-lookup/index.js", Line: 3, Module: "[jit]"},
		{Function: "connect", File: "node:net", Line: 227, Module: "[jit]"},
		{Function: "phoneHome", File: "/app/phonehome.js", Line: 15, Module: "[jit]"},
		{Function: "Builtins_InterpreterEntryTrampoline", Module: "/usr/bin/node"},
	}
	strippedStack = []Frame{
		{Function: "__connect", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6", Offset: 0x10a7c0},
		{Module: "/tmp/phonehome-stripped", Offset: 0x13af},
		{Module: "[anon]", Offset: 0x7f00},
	}
)

func TestCallSite(t *testing.T) {
	tests := []struct {
		name  string
		stack []Frame
		app   string
		want  string
	}{
		{"go", goStack, "", "main.checkForUpdates (updates.go:42)"},
		{"c", cStack, "", "check_for_updates (phonehome)"},
		{"node", nodeStack, "", "phoneHome (phonehome.js:15)"},
		{"stripped", strippedStack, "", "phonehome-stripped+0x13af"},
		{"override picks the library", goStack, `retryablehttp`, "github.com/hashicorp/go-retryablehttp.(*Client).Do (client.go:600)"},
		{"override by module", strippedStack, `libc`, "__connect (libc.so.6)"},
		{"override matching nothing", cStack, `^nothing$`, ""},
		{"only runtime", goStack[:3], "", ""},
		{"empty", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var re *regexp.Regexp
			if tt.app != "" {
				re = regexp.MustCompile(tt.app)
			}
			got := ""
			if f, ok := CallSite(tt.stack, re); ok {
				got = CallSiteText(f)
			}
			if got != tt.want {
				t.Errorf("call site %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGoPackage(t *testing.T) {
	for in, want := range map[string]string{
		"net/http.(*Client).do.func1":             "net/http",
		"main.checkForUpdates":                    "main",
		"github.com/a/b.(*T).M":                   "github.com/a/b",
		"github.com/a/b.v2/c.F":                   "github.com/a/b.v2/c",
		"gopkg.in/yaml%2ev3.Unmarshal":            "gopkg.in/yaml%2ev3",
		"noDotAtAll":                              "",
		"internal/runtime/syscall/linux.Syscall6": "internal/runtime/syscall/linux",
	} {
		if got := goPackage(in); got != want {
			t.Errorf("goPackage(%q) = %q, want %q", in, got, want)
		}
	}
}
