package main

import (
	"errors"
	"fmt"
)

func runReady(e *env, args []string) error {
	fs := newFlagSet(e, "ready", "",
		"Ask the daemon once whether it is ready (GET /readyz): exit 0 when it\n"+
			"is recovered and writable, 1 with the reason otherwise.")
	var cf clientFlags
	cf.register(fs, e)
	quiet := fs.Bool("q", false, "print nothing when ready")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	_, _, err = c.Get(e.ctx, "/readyz", nil)
	var ae *APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("not ready: %w", err)
	}
	if err != nil {
		return err
	}
	if !*quiet {
		_, err = fmt.Fprintln(e.stdout, "ready")
	}
	return err
}
