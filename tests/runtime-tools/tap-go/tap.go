// Package tap is a small Test Anything Protocol (version 13) producer with the
// API that opencontainers/runtime-tools' validation programs and runtimetest
// call (New, Header, Ok, Pass, Fail, Skip, Todo, Diagnostic, Diagnosticf,
// YAML, AutoPlan, Count).  Debian does not package github.com/mndrix/tap-go,
// so capsa's runtime-tools harness builds the validations against this
// implementation instead; it is installed into the build GOPATH under that
// import path.
package tap

import (
	"fmt"
	"io"
	"os"
	"strings"

	yaml "gopkg.in/yaml.v3"
)

// T is a TAP stream.
type T struct {
	nextTestNumber *int
	todo           bool
	// Writer is where the stream goes (standard output by default).
	Writer io.Writer
}

// New starts a TAP stream on standard output.
func New() *T {
	n := 1
	return &T{nextTestNumber: &n, Writer: os.Stdout}
}

func (t *T) printf(format string, a ...interface{}) {
	fmt.Fprintf(t.Writer, format, a...)
}

// Header prints the version line and, when testCount > 0, the plan.
func (t *T) Header(testCount int) {
	t.printf("TAP version 13\n")
	if testCount > 0 {
		t.printf("1..%d\n", testCount)
	}
}

// Ok reports one test point.
func (t *T) Ok(test bool, description string) {
	ok := "ok"
	if !test {
		ok = "not ok"
	}
	directive := ""
	if t.todo {
		directive = " # TODO"
	}
	t.printf("%s %d - %s%s\n", ok, *t.nextTestNumber, description, directive)
	*t.nextTestNumber++
}

// Pass reports a passing test point.
func (t *T) Pass(description string) { t.Ok(true, description) }

// Fail reports a failing test point.
func (t *T) Fail(description string) { t.Ok(false, description) }

// Skip reports count skipped test points.
func (t *T) Skip(count int, description string) {
	for i := 0; i < count; i++ {
		t.printf("ok %d # SKIP %s\n", *t.nextTestNumber, description)
		*t.nextTestNumber++
	}
}

// Todo returns a view of the stream whose test points carry a TODO directive.
func (t *T) Todo() *T {
	c := *t
	c.todo = true
	return &c
}

// Count is the number of test points reported so far.
func (t *T) Count() int { return *t.nextTestNumber - 1 }

// AutoPlan prints the plan for the test points reported so far.
func (t *T) AutoPlan() { t.printf("1..%d\n", t.Count()) }

// Diagnostic prints a comment, one "# " line per line of message.
func (t *T) Diagnostic(message string) {
	for _, line := range strings.Split(strings.TrimRight(message, "\n"), "\n") {
		t.printf("# %s\n", line)
	}
}

// Diagnosticf is Diagnostic with formatting.
func (t *T) Diagnosticf(format string, a ...interface{}) {
	t.Diagnostic(fmt.Sprintf(format, a...))
}

// YAML prints a YAML diagnostic block for the previous test point.
func (t *T) YAML(message interface{}) error {
	out, err := yaml.Marshal(message)
	if err != nil {
		return err
	}
	t.printf("  ---\n")
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.printf("  %s\n", line)
	}
	t.printf("  ...\n")
	return nil
}
