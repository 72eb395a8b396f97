package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// defaultAddr is the daemon's default socket: unix:DIR/pstated.sock with the
// default data dir ./data.
const defaultAddr = "unix:./data/pstated.sock"

// env is what a command may touch of the process: its streams and a
// context cancelled by SIGINT/SIGTERM.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// addr and tokenFile are the values of the global flags; a command's
	// own --addr / --token-file start from them.
	addr      string
	tokenFile string
}

// command is one subcommand: its name, a one-line summary and the function
// that runs it on the arguments after the name.
type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

// commands lists every subcommand in the order the usage shows them.
var commands = []command{
	{"status", "print the daemon's status", runStatus},
	{"jobs", "list jobs (--state, --label k:v, --limit, --after, --all)", runJobs},
	{"job", "print one job with its steps and attempts", runJob},
	{"workspaces", "list workspaces, or print one", runWorkspaces},
	{"submit", "send NDJSON events in batches", runSubmit},
	{"checkpoint", "take a checkpoint now", runCheckpoint},
	{"backup", "save a consistent snapshot of the daemon to a file", runBackup},
	{"restore", "offline: seed an empty data dir from a backup", runRestore},
	{"verify", "offline: check every snapshot and log record of a data dir", runVerify},
	{"wal", "offline: 'wal dump' prints the log's records as NDJSON", runWAL},
	{"load", "drive the daemon with a realistic load and measure it", runLoad},
	{"ready", "exit 0 when the daemon is ready, 1 with its reason otherwise", runReady},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run parses the global flags, runs the command and maps its error to the
// exit status: 0 success, 1 failure, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer,
	getenv func(string) string) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}

	fs := flag.NewFlagSet("pstatectl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := defaultAddr
	if v := getenv("PSTATE_ADDR"); v != "" {
		addr = v
	}
	fs.StringVar(&e.addr, "addr", addr, "daemon address: unix:PATH or HOST:PORT (env PSTATE_ADDR)")
	fs.StringVar(&e.tokenFile, "token-file", "", "file holding the bearer token")
	fs.Usage = func() { printUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		printUsage(stderr, fs)
		return 2
	}

	name := fs.Arg(0)
	for _, c := range commands {
		if c.name == name {
			return exitCode(stderr, name, c.run(e, fs.Args()[1:]))
		}
	}
	fmt.Fprintf(stderr, "pstatectl: unknown command %q\n", name)
	printUsage(stderr, fs)
	return 2
}

// exitCode prints err (unless the flag package already did) and maps it to
// the exit status.
func exitCode(stderr io.Writer, name string, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlagParse):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pstatectl %s: %s\n", name, ue.msg)
		if ue.fs != nil {
			ue.fs.Usage()
		}
		return 2
	default:
		fmt.Fprintf(stderr, "pstatectl %s: %v\n", name, err)
		return 1
	}
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: pstatectl [--addr ADDR] [--token-file F] COMMAND [ARGS]\n\n")
	fmt.Fprintf(w, "commands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nglobal flags:\n")
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nRun 'pstatectl COMMAND -h' for a command's flags.\n")
}

// usageError is bad usage of a command: exit status 2 and the command's
// usage.
type usageError struct {
	msg string
	fs  *flag.FlagSet
}

func (u *usageError) Error() string { return u.msg }

// usagef returns a usageError for the command whose flags are fs.
func usagef(fs *flag.FlagSet, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), fs: fs}
}

// errFlagParse marks a flag error the flag package has already printed.
var errFlagParse = errors.New("bad flags")

// newFlagSet returns the flag set of a command, printing its synopsis and
// flags on -h or a flag error.
func newFlagSet(e *env, name, synopsis, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: pstatectl %s %s\n\n%s\n", name, synopsis, summary)
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(e.stderr, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseArgs parses flags that may stand before, between or after the
// positional arguments, and returns the positional ones. After "--"
// everything is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	head, tail := splitDashDash(args)
	var pos []string
	for {
		if err := fs.Parse(head); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagParse
		}
		if fs.NArg() == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, fs.Arg(0))
		head = fs.Args()[1:]
	}
}

// splitDashDash splits args at the first "--": the flags part and what
// follows the marker (nil when there is none).
func splitDashDash(args []string) (head, tail []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i:i], append([]string{}, args[i+1:]...)
		}
	}
	return args, nil
}

// clientFlags are the connection flags every online command accepts.
type clientFlags struct {
	addr      string
	tokenFile string
}

// register adds --addr and --token-file to fs, defaulting to the global
// values.
func (cf *clientFlags) register(fs *flag.FlagSet, e *env) {
	fs.StringVar(&cf.addr, "addr", e.addr, "daemon address: unix:PATH or HOST:PORT")
	fs.StringVar(&cf.tokenFile, "token-file", e.tokenFile, "file holding the bearer token")
}

// parseNoArgs parses args for a command that takes flags only.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err == nil && len(pos) != 0 {
		err = usagef(fs, "unexpected argument %q", pos[0])
	}
	return err
}

// client opens a client for the flags' address.
func (cf *clientFlags) client(conns int) (*Client, error) {
	return NewClient(cf.addr, cf.tokenFile, conns)
}
