// Command promoflow runs and operates the Promoflow pipeline: one binary
// whose subcommands start processors and sinks, manage topics, publish
// events, run the embedded demo and benchmark the pipeline. It only wires
// packages together; the work lives in producers/, processors/, sinks/,
// schemas/ and internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // after "promoflow <name> "
	help    string // longer description
	flags   func(fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

var commands = map[string]*command{}

// cmdStdout is where a running command prints its results: runMain's
// stdout (os.Stdout from main, a buffer in tests).
var cmdStdout io.Writer = os.Stdout

// cmdStderr is where a running command prints progress and hints:
// runMain's stderr.
var cmdStderr io.Writer = os.Stderr

func register(c *command) { commands[c.name] = c }

const overview = `promoflow: event-driven stream processing for marketing campaigns
(coupons, lotteries, referrals, recommendations, crowds and notifications) on
Kafka, Redis, MySQL and ClickHouse.

Usage:
  promoflow <command> [flags] [args]
  promoflow help <command>

Commands:
%s
Global configuration: every command that connects takes --config FILE
(YAML, see docs/configuration.md) and reads PROMOFLOW_* environment
overrides; flags win over both. Every command takes --log-format text|json
and --log-level debug|info|warn|error.
`

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, overview, b.String())
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	name := args[0]
	if name == "help" {
		if len(args) < 2 {
			usage(stdout)
			return 0
		}
		c, ok := commands[args[1]]
		if !ok {
			fmt.Fprintf(stderr, "promoflow: unknown command %q\n", args[1])
			return 2
		}
		fs := newFlagSet(c, stdout)
		c.flags(fs)
		fs.Usage()
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "promoflow: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	logFlags.format, logFlags.level = "", "" // runMain runs more than once in tests
	fs := newFlagSet(c, stderr)
	run := c.flags(fs)
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmdStdout, cmdStderr = stdout, stderr
	if err := run(ctx, positional); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "promoflow %s: %v\n\n", name, err)
			fs.SetOutput(stderr)
			fs.Usage()
			return 2
		}
		fmt.Fprintf(stderr, "promoflow %s: %v\n", name, err)
		return 1
	}
	return 0
}

// parseInterspersed parses flags before and after positional arguments
// ("topics apply --config f" as well as "topics --config f apply"); "--"
// ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(c *command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("promoflow "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	addGlobalFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: promoflow %s %s\n\n%s\n", c.name, c.usage, strings.Trim(c.help, "\n"))
		has := false
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintf(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// usageError marks errors caused by wrong arguments; the usage is printed.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }
