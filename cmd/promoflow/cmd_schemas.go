package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"

	"github.com/promoflow/promoflow/schemas"
)

func init() {
	register(&command{
		name:    "schemas",
		summary: "list the embedded event schemas, print one, or validate events",
		usage:   "list | show TYPE.vN | validate [FILE|-]",
		help: `  list              every <type>.v<version> the pipeline accepts
  show TYPE.vN      the JSON Schema of one event type (e.g. coupon.claim.requested.v1),
                    or "envelope" for the envelope
  validate [FILE]   check JSON-lines events (default stdin) exactly as processors
                    will, printing each invalid line with its reason`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("want list, show or validate")
				}
				switch args[0] {
				case "list":
					for _, tv := range schemas.Known() {
						fmt.Println(tv)
					}
					return nil
				case "show":
					if len(args) != 2 {
						return usagef("show takes one schema name")
					}
					name := args[1] + ".schema.json"
					if args[1] == "envelope" {
						name = "envelope.v1.schema.json"
					}
					b, err := iofs.ReadFile(schemas.FS(), name)
					if err != nil {
						return fmt.Errorf("no schema %q (see 'promoflow schemas list')", args[1])
					}
					os.Stdout.Write(b)
					return nil
				case "validate":
					return validateLines(args[1:])
				}
				return usagef("unknown action %q", args[0])
			}
		},
	})
}

func validateLines(args []string) error {
	in := os.Stdin
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	n, bad := 0, 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if _, err := schemas.Decode(line); err != nil {
			bad++
			fmt.Printf("line %d: %s\n", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading line %d: %w", n+1, err)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d lines invalid", bad, n)
	}
	fmt.Printf("%d lines valid\n", n)
	return nil
}
