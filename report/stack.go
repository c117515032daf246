package report

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Frame is one frame of the user-space call stack that made a call
// (egress --stacks), innermost first. Function, File and Line are empty or
// 0 where the code had no symbols: Module and Offset still say where it is.
type Frame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Module   string `json:"module"`
	Offset   uint64 `json:"offset"` // ELF virtual address in Module (addr2line -e MODULE OFFSET), or the raw address
}

// CallSite picks the frame that says which code made a call: the
// innermost frame of the application's own code. With app set, a frame is
// the application's when app matches its function, its file or its module. Without app, the default rule of AppFrame applies.
// When no frame is the application's by name, the innermost frame outside
// known libraries and runtimes is taken, as module+offset (stripped code).
// ok is false when there is no such frame either.
func CallSite(stack []Frame, app *regexp.Regexp) (f Frame, ok bool) {
	for _, f := range stack {
		if app != nil {
			if app.MatchString(f.Function) || app.MatchString(f.File) || app.MatchString(f.Module) {
				return f, true
			}
			continue
		}
		if f.Function != "" && AppFrame(f) {
			return f, true
		}
	}
	if app != nil {
		return Frame{}, false
	}
	for _, f := range stack {
		if f.Function == "" && AppFrame(f) {
			return f, true
		}
	}
	return Frame{}, false
}

// CallSiteText is how the table and the headline show a call site:
// "main.checkForUpdates (main.go:36)", "check_for_updates (phonehome)",
// "phonehome+0x13af" where the code has no symbols.
func CallSiteText(f Frame) string {
	switch {
	case f.Function != "" && f.File != "" && f.Line > 0:
		return fmt.Sprintf("%s (%s:%d)", f.Function, path.Base(f.File), f.Line)
	case f.Function != "" && f.File != "":
		return fmt.Sprintf("%s (%s)", f.Function, path.Base(f.File))
	case f.Function != "":
		return fmt.Sprintf("%s (%s)", f.Function, path.Base(f.Module))
	}
	return fmt.Sprintf("%s+%#x", path.Base(f.Module), f.Offset)
}

// AppFrame is the default rule for "the application's own code": a frame
// is not when it is
//   - Go's runtime or standard library (a package path whose first element
//     has no dot, except main), or a known HTTP or RPC client library;
//   - a JavaScript frame of Node's own modules (node:..., internal/...), of
//     node_modules, or a V8 builtin (JIT code without a file);
//   - in a shared library (*.so, *.so.N: libc, libcurl, libssl, libuv...)
//     or in a language runtime's executable (node, python3, ruby, php,
//     java, perl);
//   - anonymous or unmapped memory.
//
// Everything else (main.*, your module's packages, your script's
// functions, a C program's own functions) is the application's.
func AppFrame(f Frame) bool {
	switch f.Module {
	case "[anon]", "[unknown]", "[vdso]", "[vsyscall]":
		return false
	case "[jit]":
		return f.File != "" && !strings.HasPrefix(f.File, "node:") && !strings.HasPrefix(f.File, "internal/") &&
			!strings.Contains(f.File, "/node_modules/")
	}
	if strings.HasSuffix(f.File, ".go") || strings.HasSuffix(f.File, ".s") {
		return appGoPackage(goPackage(f.Function))
	}
	base := path.Base(f.Module)
	if strings.Contains(base, ".so") || runtimeExe.MatchString(base) {
		return false
	}
	return true
}

var runtimeExe = regexp.MustCompile(`^(node|nodejs|python[0-9.]*|ruby[0-9.]*|php[0-9.]*|php-fpm[0-9.]*|java|perl[0-9.]*|deno|bun)$`)

// goLibraries are client libraries whose frames sit between an
// application's function and the dial.
var goLibraries = []string{
	"golang.org/x/net/", "google.golang.org/grpc", "github.com/hashicorp/go-retryablehttp",
	"github.com/go-resty/resty", "github.com/valyala/fasthttp", "github.com/imroc/req",
	"github.com/gojek/heimdall", "nhooyr.io/websocket", "github.com/gorilla/websocket",
}

func appGoPackage(pkg string) bool {
	if pkg == "" {
		return false
	}
	if pkg == "main" {
		return true
	}
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		return false // runtime, net/http, internal/poll, ...
	}
	for _, lib := range goLibraries {
		if strings.HasPrefix(pkg+"/", lib) || strings.HasPrefix(pkg, lib) {
			return false
		}
	}
	return true
}

// goPackage is the import path of a Go function name:
// "net/http.(*Client).do.func1" -> "net/http".
func goPackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return ""
	}
	return fn[:slash+1+dot]
}

// stackText is the whole stack, one frame a line, for a tooltip.
func stackText(stack []Frame) string {
	var b strings.Builder
	for i, f := range stack {
		if i > 0 {
			b.WriteByte('\n')
		}
		if f.Function != "" {
			b.WriteString(f.Function)
		} else {
			fmt.Fprintf(&b, "%s+%#x", path.Base(f.Module), f.Offset)
		}
		if f.File != "" {
			fmt.Fprintf(&b, " %s:%d", f.File, f.Line)
		}
	}
	return b.String()
}
